//! Splitting the input stream into frames (lines) without ever buffering more than a bound.
//!
//! A line longer than the bound is read through and dropped as it arrives, so a confused or
//! hostile peer cannot make the agent hold more than `max` bytes. Parsing is not done here.

use std::io::{self, BufRead};

/// One unit read from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete line, newline excluded.
    Line(Vec<u8>),
    /// A line longer than the bound; its bytes were discarded.
    TooLarge,
    /// Bytes after the last newline when the input ended: a frame cut short.
    Truncated(Vec<u8>),
    /// The input ended cleanly.
    Eof,
}

/// Reads [`Frame`]s from a [`BufRead`], holding at most `max` bytes of one line.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    max: usize,
}

impl<R: BufRead> FrameReader<R> {
    /// A reader that accepts lines of up to `max` bytes, newline excluded.
    pub fn new(inner: R, max: usize) -> Self {
        FrameReader { inner, max }
    }

    /// The next frame.
    ///
    /// # Errors
    /// The underlying reader's errors (other than `Interrupted`, which is retried).
    pub fn next_frame(&mut self) -> io::Result<Frame> {
        let mut line = Vec::new();
        let mut oversized = false;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                return Ok(match (oversized, line.is_empty()) {
                    (true, _) => Frame::TooLarge,
                    (false, true) => Frame::Eof,
                    (false, false) => Frame::Truncated(line),
                });
            }
            let (chunk, consumed, done) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (&available[..i], i + 1, true),
                None => (available, available.len(), false),
            };
            if !oversized {
                if line.len() + chunk.len() > self.max {
                    oversized = true;
                    line = Vec::new();
                } else {
                    line.extend_from_slice(chunk);
                }
            }
            self.inner.consume(consumed);
            if done {
                return Ok(if oversized {
                    Frame::TooLarge
                } else {
                    Frame::Line(line)
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn frames(input: &[u8], max: usize, buf_cap: usize) -> Vec<Frame> {
        let mut r = FrameReader::new(BufReader::with_capacity(buf_cap, input), max);
        let mut out = Vec::new();
        loop {
            let f = r.next_frame().unwrap();
            let end = f == Frame::Eof;
            out.push(f);
            if end || out.len() > 100 {
                return out;
            }
        }
    }

    #[test]
    fn lines_are_split_on_newlines() {
        assert_eq!(
            frames(b"{\"a\":1}\n{\"b\":2}\n", 64, 4),
            vec![
                Frame::Line(b"{\"a\":1}".to_vec()),
                Frame::Line(b"{\"b\":2}".to_vec()),
                Frame::Eof
            ]
        );
    }

    #[test]
    fn an_oversize_line_is_discarded_and_the_next_frame_still_reads() {
        let mut input = vec![b'x'; 1000];
        input.extend_from_slice(b"\nok\n");
        assert_eq!(
            frames(&input, 10, 16),
            vec![Frame::TooLarge, Frame::Line(b"ok".to_vec()), Frame::Eof]
        );
    }

    #[test]
    fn a_line_of_exactly_the_bound_is_accepted() {
        assert_eq!(
            frames(b"abcd\nabcde\n", 4, 2),
            vec![Frame::Line(b"abcd".to_vec()), Frame::TooLarge, Frame::Eof]
        );
    }

    #[test]
    fn a_truncated_tail_is_reported() {
        assert_eq!(
            frames(b"one\ntw", 64, 3),
            vec![
                Frame::Line(b"one".to_vec()),
                Frame::Truncated(b"tw".to_vec()),
                Frame::Eof
            ]
        );
    }

    #[test]
    fn an_oversize_truncated_tail_is_too_large() {
        assert_eq!(
            frames(&[b'y'; 100], 10, 8),
            vec![Frame::TooLarge, Frame::Eof]
        );
    }

    #[test]
    fn empty_lines_come_through_as_empty_frames() {
        // The serve loop skips them; the reader stays a plain splitter.
        assert_eq!(
            frames(b"\n\nx\n", 64, 64),
            vec![
                Frame::Line(vec![]),
                Frame::Line(vec![]),
                Frame::Line(b"x".to_vec()),
                Frame::Eof
            ]
        );
    }

    #[test]
    fn empty_input_is_eof() {
        assert_eq!(frames(b"", 64, 64), vec![Frame::Eof]);
    }
}
