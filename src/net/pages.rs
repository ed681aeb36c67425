//! The pages after the first of an offset-paged read. Both clients read the first page,
//! learn the total from it, and hand the other offsets to [`PageWindow::read`]: a bounded
//! number in flight, offsets handed out as slots free up, nothing more scheduled once the
//! read is going wrong, and the pages given back in offset order. What a page means (a
//! total that moved, an empty page, whether a lost page fails the read or only makes it
//! incomplete) stays with each client.

use std::future::Future;

use tokio::task::JoinSet;

use super::HttpError;

/// How the rest of a read goes after one page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageFlow {
    /// Go on scheduling pages.
    Go,
    /// Schedule nothing more, for this reason; the pages in flight still land.
    Stop(String),
    /// The read has failed: the pages in flight are dropped and the read returns now.
    Abort,
}

/// How many pages a read has in flight, and after how many lost pages it stops asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageWindow {
    /// Pages in flight at once (at least one).
    pub in_flight: usize,
    /// Pages lost for good after which nothing more is scheduled: a failing server is not
    /// asked for page after page, each retried to the end of its policy.
    pub max_lost: usize,
}

/// What [`PageWindow::read`] fetched.
#[derive(Debug)]
pub struct Fetched<O, P> {
    /// Each page that came back, or was lost for good, in offset order.
    pub pages: Vec<(O, Result<P, HttpError>)>,
    /// Why scheduling stopped before the offsets ran out (the first reason given).
    pub stopped: Option<String>,
}

impl PageWindow {
    /// Fetches the page at each of `offsets` with `fetch` (each on its own task, so pages
    /// are parsed in parallel). `offsets` is drawn lazily, so a bogus total costs nothing
    /// until iterated, and is left holding what was never scheduled. `judge` sees each page
    /// as it lands, in any order, and says how to go on; after `max_lost` lost pages
    /// scheduling stops too. A page task that panicked re-raises its panic here: a bug in
    /// reading a page is not a network failure.
    pub async fn read<O, P, F, Fut, J>(
        self,
        offsets: &mut impl Iterator<Item = O>,
        mut fetch: F,
        mut judge: J,
    ) -> Fetched<O, P>
    where
        O: Copy + Ord + Send + 'static,
        P: Send + 'static,
        F: FnMut(O) -> Fut,
        Fut: Future<Output = Result<P, HttpError>> + Send + 'static,
        J: FnMut(O, &Result<P, HttpError>) -> PageFlow,
    {
        let mut tasks = JoinSet::new();
        let mut pages = Vec::new();
        let mut stopped: Option<String> = None;
        let mut lost = 0;
        loop {
            while stopped.is_none() && tasks.len() < self.in_flight.max(1) {
                let Some(offset) = offsets.next() else { break };
                let page = fetch(offset);
                tasks.spawn(async move { (offset, page.await) });
            }
            let Some(joined) = tasks.join_next().await else {
                break;
            };
            let (offset, result) = match joined {
                Ok(done) => done,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // Only a runtime shutting down cancels a page; this read is ending with it.
                Err(_) => {
                    stopped.get_or_insert_with(|| "a page read was cancelled".to_owned());
                    continue;
                }
            };
            lost += usize::from(result.is_err());
            match judge(offset, &result) {
                PageFlow::Go => {}
                PageFlow::Stop(why) => {
                    stopped.get_or_insert(why);
                }
                PageFlow::Abort => {
                    // Dropping `tasks` on return aborts the pages still in flight.
                    pages.push((offset, result));
                    break;
                }
            }
            if lost >= self.max_lost {
                stopped.get_or_insert_with(|| format!("{lost} pages were lost"));
            }
            pages.push((offset, result));
        }
        pages.sort_by_key(|(offset, _)| *offset);
        Fetched { pages, stopped }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::net::ErrorKind;

    fn lost(offset: u64) -> HttpError {
        HttpError::new(
            "GET",
            &format!("u?offset={offset}"),
            ErrorKind::Status,
            "503",
        )
    }

    fn offsets(fetched: &Fetched<u64, u64>) -> Vec<u64> {
        fetched.pages.iter().map(|(o, _)| *o).collect()
    }

    #[tokio::test]
    async fn pages_are_fetched_a_window_at_a_time_and_come_back_in_offset_order() {
        let now = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let window = PageWindow {
            in_flight: 3,
            max_lost: 1,
        };
        let fetched = window
            .read(
                &mut (0..10u64),
                |offset| {
                    let (now, most) = (now.clone(), most.clone());
                    async move {
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(n, Ordering::SeqCst);
                        // Later pages land first.
                        tokio::time::sleep(Duration::from_millis(20 - 2 * offset)).await;
                        now.fetch_sub(1, Ordering::SeqCst);
                        Ok(offset * 10)
                    }
                },
                |_, _| PageFlow::Go,
            )
            .await;
        assert_eq!(offsets(&fetched), (0..10).collect::<Vec<_>>());
        assert!(fetched
            .pages
            .iter()
            .all(|(o, p)| p.as_ref().ok() == Some(&(o * 10))));
        assert_eq!(fetched.stopped, None);
        assert_eq!(most.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn lost_pages_and_the_judge_stop_scheduling_but_let_pages_in_flight_land() {
        let window = PageWindow {
            in_flight: 1,
            max_lost: 3,
        };
        let mut rest = 0..10u64;
        let fetched = window
            .read(
                &mut rest,
                |offset| async move {
                    if offset >= 3 {
                        Err(lost(offset))
                    } else {
                        Ok(offset)
                    }
                },
                |_, _| PageFlow::Go,
            )
            .await;
        assert_eq!(offsets(&fetched), [0, 1, 2, 3, 4, 5]);
        assert_eq!(fetched.stopped.as_deref(), Some("3 pages were lost"));
        assert_eq!(rest.next(), Some(6), "the offsets never scheduled are left");

        let window = PageWindow {
            in_flight: 3,
            max_lost: 3,
        };
        let mut rest = 0..10u64;
        let fetched = window
            .read(
                &mut rest,
                |offset| async move { Ok(offset) },
                |offset, _| match offset {
                    0 => PageFlow::Stop("first".into()),
                    _ => PageFlow::Stop("later".into()),
                },
            )
            .await;
        assert_eq!(offsets(&fetched), [0, 1, 2], "the three in flight landed");
        assert_eq!(fetched.stopped.as_deref(), Some("first"));
        assert_eq!(rest.next(), Some(3));
    }

    #[tokio::test]
    async fn abort_returns_without_waiting_for_pages_in_flight() {
        let started = Instant::now();
        let window = PageWindow {
            in_flight: 2,
            max_lost: 1,
        };
        let fetched = window
            .read(
                &mut (0..10u64),
                |offset| async move {
                    if offset == 0 {
                        return Err(lost(0));
                    }
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Ok(offset)
                },
                |_, result| match result {
                    Err(_) => PageFlow::Abort,
                    Ok(_) => PageFlow::Go,
                },
            )
            .await;
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(offsets(&fetched), [0]);
        assert!(fetched.pages[0].1.is_err());
    }

    #[tokio::test]
    #[should_panic(expected = "a bug in the page code")]
    async fn a_panicking_page_is_a_panic_not_a_lost_page() {
        let window = PageWindow {
            in_flight: 2,
            max_lost: 1,
        };
        window
            .read(
                &mut (0..2u64),
                |offset| async move {
                    if offset == 1 {
                        panic!("a bug in the page code");
                    }
                    Ok(offset)
                },
                |_, _| PageFlow::Go,
            )
            .await;
    }
}
