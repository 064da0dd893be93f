//! Progress bars on stderr, shown only when stderr is a terminal and the user did not ask
//! for quiet: scripts rely on an empty stderr after success.

use std::cell::RefCell;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use diff_dd::engine::{Progress, Stage};

/// One bar per stage of the work, each cleared when the next starts or the work ends.
pub struct Bars {
    shown: bool,
    bar: RefCell<Option<ProgressBar>>,
}

impl Bars {
    /// `show` is the user's wish; bars still stay hidden unless stderr is a terminal.
    pub fn new(show: bool) -> Bars {
        Bars {
            shown: show && std::io::stderr().is_terminal(),
            bar: RefCell::new(None),
        }
    }

    fn clear(&self) {
        if let Some(bar) = self.bar.borrow_mut().take() {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bars {
    fn start(&self, stage: Stage, total_bytes: u64) {
        self.clear();
        if !self.shown {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{msg:>16} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .map(|style| style.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(stage.label());
        bar.enable_steady_tick(Duration::from_millis(200));
        *self.bar.borrow_mut() = Some(bar);
    }

    fn advance(&self, bytes: u64) {
        if let Some(bar) = &*self.bar.borrow() {
            bar.inc(bytes);
        }
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.clear();
    }
}
