//! vmctl-agent library: the ops the agent serves.
