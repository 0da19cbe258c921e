//! The one way this crate runs blocking work (engine calls, file I/O, key derivation) off the
//! async executor.

/// A blocking task panicked or was cancelled; the join error is kept as the source.
#[derive(Debug, thiserror::Error)]
#[error("a blocking task did not finish")]
pub struct TaskFailed(#[from] tokio::task::JoinError);

/// Run `f` on tokio's blocking pool and return its result. Outside a runtime there is no
/// executor to protect, and `f` runs in place.
pub(crate) async fn run_blocking<T, E, F>(f: F) -> Result<T, E>
where
    F: FnOnce() -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<TaskFailed> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.spawn_blocking(f).await.map_err(|e| E::from(TaskFailed(e)))?,
        Err(_) => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Failure {
        #[error(transparent)]
        Task(#[from] TaskFailed),
    }

    #[tokio::test]
    async fn a_panicking_task_is_an_error_with_the_join_error_as_source() {
        let result: Result<(), Failure> = run_blocking(|| panic!("boom")).await;
        let err = result.unwrap_err();
        let mut chain = Vec::new();
        let mut next = std::error::Error::source(&err);
        while let Some(e) = next {
            chain.push(e.to_string());
            next = e.source();
        }
        assert!(chain.iter().any(|s| s.contains("panicked")), "{err:?}: {chain:?}");
    }

    #[tokio::test]
    async fn a_value_comes_back() {
        let v: Result<u32, Failure> = run_blocking(|| Ok(7)).await;
        assert_eq!(v.unwrap(), 7);
    }
}
