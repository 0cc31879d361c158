//! The live status line on stderr for long syncs and bumps, like cargo's:
//! one line, redrawn in place (`\r` + clear line), at most every 100 ms, and
//! cleared before the report goes to stdout. Only on a terminal: piped or
//! redirected stderr, `--no-progress`, `RELBOT_NO_PROGRESS` or `TERM=dumb`
//! get nothing, so logs and scripts never see control characters.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use relbot::progress::{Progress, ProgressEvent, ProgressSink};

use super::GlobalArgs;

/// Fast enough to look live, slow enough not to flicker or cost anything.
pub const REDRAW_INTERVAL: Duration = Duration::from_millis(100);
/// Carriage return, then erase the whole line.
const CLEAR: &str = "\r\x1b[2K";

/// Whether to show progress at all. Whether stderr is a terminal is passed
/// in so tests can decide it.
pub fn wanted(global: &GlobalArgs, stderr_is_terminal: bool, term: Option<&str>) -> bool {
    stderr_is_terminal && !global.no_progress && term != Some("dumb")
}

/// The line's state: what it says, and when it was last drawn. Time is
/// passed in, so throttling is tested without sleeping.
pub struct StatusLine<W: Write> {
    out: W,
    width: usize,
    text: String,
    /// The text changed (or was wiped) since it was last drawn.
    dirty: bool,
    /// Something is on the terminal's line now.
    shown: bool,
    last_draw: Option<Instant>,
    /// The current application's counters, kept across events so the
    /// wave, the health wait and the count appear on one line.
    step: String,
    applied: (usize, usize),
    /// Finished: the report owns the terminal now; draw nothing more.
    closed: bool,
}

impl<W: Write> StatusLine<W> {
    /// `width`: the terminal's columns; longer text is cut so the line never
    /// wraps (a wrapped line cannot be erased with one `\r`).
    pub fn new(out: W, width: usize) -> Self {
        StatusLine {
            out,
            width: width.max(10),
            text: String::new(),
            dirty: false,
            shown: false,
            last_draw: None,
            step: String::new(),
            applied: (0, 0),
            closed: false,
        }
    }

    pub fn event(&mut self, event: ProgressEvent, now: Instant) {
        if self.closed {
            return;
        }
        if let Some(text) = self.describe(event)
            && text != self.text
        {
            self.text = text;
            self.dirty = true;
        }
        self.tick(now);
    }

    /// Draws a change that waited for its turn.
    pub fn tick(&mut self, now: Instant) {
        let due = self
            .last_draw
            .is_none_or(|last| now.duration_since(last) >= REDRAW_INTERVAL);
        if self.dirty && due {
            let text: String = self.text.chars().take(self.width - 1).collect();
            let _ = write!(self.out, "{CLEAR}{text}");
            let _ = self.out.flush();
            self.dirty = false;
            self.shown = !text.is_empty();
            self.last_draw = Some(now);
        }
    }

    /// Erases the line so other output starts at column 0; the text is
    /// drawn again on the next tick.
    pub fn clear(&mut self) {
        if self.shown {
            let _ = write!(self.out, "{CLEAR}");
            let _ = self.out.flush();
            self.shown = false;
            self.dirty = !self.text.is_empty();
        }
    }

    /// Erases the line for good.
    pub fn close(&mut self) {
        self.clear();
        self.dirty = false;
        self.closed = true;
    }

    fn describe(&mut self, event: ProgressEvent) -> Option<String> {
        use ProgressEvent::*;
        let applied = |s: &Self| match s.applied {
            (_, 0) => "nothing to write".to_string(),
            (done, total) => format!("{done}/{total} objects applied"),
        };
        Some(match event {
            Rendering => "rendering manifests".into(),
            Planning { app, objects } => {
                self.step.clear();
                self.applied = (0, 0);
                format!("{app}: planning {objects} objects")
            }
            Wave {
                app,
                step,
                steps,
                name,
                total,
                ..
            } => {
                self.step = format!("{name} (step {step} of {steps})");
                self.applied.1 = total;
                format!("{app}: applying {} · {}", self.step, applied(self))
            }
            Applied { app, done, total } => {
                self.applied = (done, total);
                format!("{app}: applying {} · {}", self.step, applied(self))
            }
            WaitingForHealth { app, name, waiting } => {
                format!(
                    "{app}: waiting for {name} to be healthy ({waiting} not ready) · {}",
                    applied(self)
                )
            }
            Pruning { app, done, total } => format!("{app}: pruning {done}/{total}"),
            Hooks {
                app,
                phase,
                hooks,
                done: false,
                ..
            } => format!("{app}: running {hooks} {phase} hook(s)"),
            Hooks { done: true, .. } => return None,
            FetchingBase => "fetching the base branch".into(),
            PolicyStarted { policy, image } => format!("{policy}: checking {image}"),
            TagsListed {
                policy,
                pages,
                tags,
            } => format!("{policy}: listing tags · {pages} page(s), {tags} tags"),
            RewritingFiles { policy, files } => format!("{policy}: rewriting {files} file(s)"),
            PushingBranch { policy, branch } => format!("{policy}: pushing {branch}"),
            OpeningPullRequest { policy, update } => match update {
                true => format!("{policy}: updating the pull request"),
                false => format!("{policy}: opening a pull request"),
            },
            RequestingMerge { policy, pr } => format!("{policy}: requesting merge of #{pr}"),
            // The next start says what comes next; nothing to say meanwhile.
            AppFinished { .. } | PolicyFinished { .. } => return None,
        })
    }
}

type Line = Mutex<StatusLine<Box<dyn Write + Send>>>;

fn lock(line: &Line) -> std::sync::MutexGuard<'_, StatusLine<Box<dyn Write + Send>>> {
    line.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Sink(Arc<Line>);

impl ProgressSink for Sink {
    fn event(&self, event: ProgressEvent) {
        lock(&self.0).event(event, Instant::now());
    }
}

/// The line being shown, for [`around_output`] (log lines).
static ACTIVE: Mutex<Option<Arc<Line>>> = Mutex::new(None);

/// Runs `write` (a log line to stderr) with the status line erased first,
/// so the two never share a line; the status comes back on the next tick.
pub fn around_output<T>(write: impl FnOnce() -> T) -> T {
    let active = ACTIVE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    match active {
        Some(line) => {
            let mut line = lock(&line);
            line.clear();
            write()
        }
        None => write(),
    }
}

/// The status line of one command; [`finish`](Self::finish) (or drop)
/// erases it.
pub struct Shown {
    line: Arc<Line>,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

/// Progress for this command: a status line on stderr when [`wanted`],
/// else a handle nobody listens to.
pub fn start(global: &GlobalArgs) -> (Progress, Option<Shown>) {
    use std::io::IsTerminal;
    let stderr = std::io::stderr();
    let term = std::env::var("TERM").ok();
    if !wanted(global, stderr.is_terminal(), term.as_deref()) {
        return (Progress::none(), None);
    }
    let width = terminal_size::terminal_size_of(&stderr).map_or(80, |(w, _)| w.0 as usize);
    let line: Arc<Line> = Arc::new(Mutex::new(StatusLine::new(Box::new(stderr), width)));
    *ACTIVE.lock().unwrap_or_else(PoisonError::into_inner) = Some(line.clone());
    // Draws throttled changes even when no further event comes (a long
    // wait for one object), so the line never shows a stale phase.
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = {
        let (line, stop) = (line.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::park_timeout(REDRAW_INTERVAL);
                lock(&line).tick(Instant::now());
            }
        })
    };
    let progress = Progress::to(Arc::new(Sink(line.clone())));
    (
        progress,
        Some(Shown {
            line,
            stop,
            ticker: Some(ticker),
        }),
    )
}

impl Shown {
    /// Stops drawing and erases the line, before the report is printed.
    pub fn finish(mut self) {
        self.stop_and_clear();
    }

    fn stop_and_clear(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            self.stop.store(true, Ordering::Relaxed);
            ticker.thread().unpark();
            let _ = ticker.join();
        }
        *ACTIVE.lock().unwrap_or_else(PoisonError::into_inner) = None;
        lock(&self.line).close();
    }
}

impl Drop for Shown {
    fn drop(&mut self) {
        self.stop_and_clear();
    }
}

/// Erases the line before a report goes out, when one is shown.
pub fn finish(shown: Option<Shown>) {
    if let Some(shown) = shown {
        shown.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test can read back while the line holds it.
    #[derive(Clone, Default)]
    struct Screen(Arc<Mutex<Vec<u8>>>);

    impl Write for Screen {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Screen {
        fn take(&self) -> String {
            String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
        }
    }

    fn applied(done: usize) -> ProgressEvent {
        ProgressEvent::Applied {
            app: "shop".into(),
            done,
            total: 10,
        }
    }

    fn global(args: &[&str]) -> GlobalArgs {
        use clap::Parser;
        let mut argv = vec!["relbot"];
        argv.extend_from_slice(args);
        argv.push("version");
        super::super::Cli::parse_from(argv).global
    }

    #[test]
    fn redraws_at_most_every_interval_and_the_latest_text_wins() {
        let screen = Screen::default();
        let mut line = StatusLine::new(screen.clone(), 120);
        let t0 = Instant::now();
        line.event(
            ProgressEvent::Wave {
                app: "shop".into(),
                step: 2,
                steps: 3,
                name: "wave 0".into(),
                writes: 4,
                total: 10,
            },
            t0,
        );
        assert_eq!(
            screen.take(),
            "\r\x1b[2Kshop: applying wave 0 (step 2 of 3) · 0/10 objects applied"
        );
        // Within the interval: remembered, not drawn.
        line.event(applied(1), t0 + Duration::from_millis(10));
        line.event(applied(2), t0 + Duration::from_millis(50));
        assert_eq!(screen.take(), "");
        // The tick after the interval draws the latest state, once.
        line.tick(t0 + REDRAW_INTERVAL);
        line.tick(t0 + REDRAW_INTERVAL * 3);
        assert_eq!(
            screen.take(),
            "\r\x1b[2Kshop: applying wave 0 (step 2 of 3) · 2/10 objects applied"
        );
    }

    #[test]
    fn clearing_erases_the_line_only_when_something_is_shown() {
        let screen = Screen::default();
        let mut line = StatusLine::new(screen.clone(), 120);
        line.clear();
        assert_eq!(screen.take(), "", "nothing shown, nothing to erase");
        let t0 = Instant::now();
        line.event(
            ProgressEvent::Pruning {
                app: "shop".into(),
                done: 1,
                total: 4,
            },
            t0,
        );
        line.clear();
        assert_eq!(screen.take(), "\r\x1b[2Kshop: pruning 1/4\r\x1b[2K");
        // Cleared for a log line: the status comes back on the next tick.
        line.tick(t0 + REDRAW_INTERVAL);
        assert_eq!(screen.take(), "\r\x1b[2Kshop: pruning 1/4");
        // Closed before the report: erased, and nothing is drawn after.
        line.close();
        line.event(ProgressEvent::FetchingBase, t0 + REDRAW_INTERVAL * 5);
        line.tick(t0 + REDRAW_INTERVAL * 6);
        assert_eq!(screen.take(), "\r\x1b[2K");
    }

    #[test]
    fn long_lines_are_cut_to_the_terminal_width() {
        let screen = Screen::default();
        let mut line = StatusLine::new(screen.clone(), 20);
        line.event(
            ProgressEvent::PolicyStarted {
                policy: "a-very-long-policy-name".into(),
                image: "docker.io/acme/api".into(),
            },
            Instant::now(),
        );
        let drawn = screen.take();
        let text = drawn.strip_prefix(CLEAR).unwrap();
        assert_eq!(text, "a-very-long-policy-");
    }

    #[test]
    fn bump_events_read_as_steps() {
        let screen = Screen::default();
        let mut line = StatusLine::new(screen.clone(), 120);
        let mut now = Instant::now();
        for event in [
            ProgressEvent::TagsListed {
                policy: "api".into(),
                pages: 3,
                tags: 300,
            },
            ProgressEvent::PushingBranch {
                policy: "api".into(),
                branch: "relbot/api".into(),
            },
            ProgressEvent::OpeningPullRequest {
                policy: "api".into(),
                update: false,
            },
        ] {
            line.event(event, now);
            now += REDRAW_INTERVAL;
        }
        assert_eq!(
            screen.take(),
            "\r\x1b[2Kapi: listing tags · 3 page(s), 300 tags\
             \r\x1b[2Kapi: pushing relbot/api\
             \r\x1b[2Kapi: opening a pull request"
        );
    }

    #[test]
    fn shown_only_on_a_terminal_and_never_when_turned_off() {
        assert!(wanted(&global(&[]), true, Some("xterm-256color")));
        assert!(!wanted(&global(&[]), false, Some("xterm")), "piped");
        assert!(!wanted(&global(&["--no-progress"]), true, Some("xterm")));
        assert!(!wanted(&global(&[]), true, Some("dumb")));
        // Not a terminal: no line, and events go nowhere.
        let (progress, shown) = start(&global(&[]));
        if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            assert!(!progress.is_listening() && shown.is_none());
        }
    }
}
