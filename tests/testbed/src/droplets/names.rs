//! Turns `--count`/`--prefix` or `--pools web=2,sidekiq=1` into droplet names, each with
//! the pool it belongs to.

/// Why a `--pools` value was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolsError {
    /// An entry was not `<pool>=<count>`.
    #[error("pool entry {entry:?} is not <pool>=<count>")]
    Malformed {
        /// The entry.
        entry: String,
    },
    /// A pool appeared twice.
    #[error("pool {pool} is listed twice")]
    Duplicate {
        /// The pool.
        pool: String,
    },
    /// No pool, or only empty ones.
    #[error("no droplets asked for")]
    Empty,
}

/// Parses `web=2,streaming=1` into `[("web", 2), ("streaming", 1)]`.
pub fn parse_pools(text: &str) -> Result<Vec<(String, usize)>, PoolsError> {
    let mut pools: Vec<(String, usize)> = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let malformed = || PoolsError::Malformed {
            entry: entry.to_owned(),
        };
        let (pool, count) = entry.split_once('=').ok_or_else(malformed)?;
        let pool = pool.trim();
        let count = count.trim().parse().map_err(|_| malformed())?;
        if pool.is_empty() {
            return Err(malformed());
        }
        if pools.iter().any(|(p, _)| p == pool) {
            return Err(PoolsError::Duplicate {
                pool: pool.to_owned(),
            });
        }
        pools.push((pool.to_owned(), count));
    }
    if pools.iter().all(|(_, count)| *count == 0) {
        return Err(PoolsError::Empty);
    }
    Ok(pools)
}

/// `<pool>-1 … <pool>-<count>` for each pool, in order, paired with the pool's name.
pub fn pool_names(pools: &[(String, usize)]) -> Vec<(String, Option<String>)> {
    pools
        .iter()
        .flat_map(|(pool, count)| {
            (1..=*count).map(move |i| (format!("{pool}-{i}"), Some(pool.clone())))
        })
        .collect()
}

/// `<prefix>-1 … <prefix>-<count>`, in no pool.
pub fn numbered_names(prefix: &str, count: usize) -> Vec<(String, Option<String>)> {
    (1..=count)
        .map(|i| (format!("{prefix}-{i}"), None))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_pools_reads_the_documented_form() {
        assert_eq!(
            parse_pools("web=2, streaming=1,sidekiq=0").unwrap(),
            vec![
                ("web".into(), 2),
                ("streaming".into(), 1),
                ("sidekiq".into(), 0)
            ]
        );
    }

    #[test]
    fn parse_pools_refuses_bad_entries() {
        assert!(matches!(
            parse_pools("web"),
            Err(PoolsError::Malformed { .. })
        ));
        assert!(matches!(
            parse_pools("web=x"),
            Err(PoolsError::Malformed { .. })
        ));
        assert!(matches!(
            parse_pools("=2"),
            Err(PoolsError::Malformed { .. })
        ));
        assert_eq!(
            parse_pools("web=1,web=2"),
            Err(PoolsError::Duplicate { pool: "web".into() })
        );
        assert_eq!(parse_pools(""), Err(PoolsError::Empty));
        assert_eq!(parse_pools("web=0"), Err(PoolsError::Empty));
    }

    #[test]
    fn names_number_from_one_within_each_pool() {
        let names = pool_names(&[("web".into(), 2), ("exec".into(), 1)]);
        assert_eq!(
            names,
            vec![
                ("web-1".into(), Some("web".into())),
                ("web-2".into(), Some("web".into())),
                ("exec-1".into(), Some("exec".into())),
            ]
        );
        assert_eq!(
            numbered_names("node", 2),
            vec![("node-1".into(), None), ("node-2".into(), None)]
        );
    }
}
