//! The interactive view: alternate screen, raw mode for single keys (`q` quits, `s` cycles the
//! sort key, `r` reverses it), the terminal restored on every exit path, panics included.
use std::{
    io::Write as _,
    time::{Duration, Instant},
};

use crossterm::{
    cursor,
    event::{self, Event, KeyCode, KeyEventKind, KeyModifiers},
    queue,
    style::Print,
    terminal::{self, ClearType},
};
use webui_monitor_core::usage_summary::UsersSummary;

use super::{
    client::{Endpoint, FetchLimits, fetch},
    view::{Sort, clean, render},
};

/// Restores the terminal when dropped, including while unwinding.
struct Guard;

impl Guard {
    fn enter() -> std::io::Result<Self> {
        terminal::enable_raw_mode()?;
        let guard = Self;
        crossterm::execute!(
            std::io::stdout(),
            terminal::EnterAlternateScreen,
            cursor::Hide
        )?;
        // A panic message printed inside the alternate screen in raw mode is lost or
        // garbled: restore first, then let the previous hook report it.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        Ok(guard)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}

fn restore() {
    // Best effort: nothing more can be done about a terminal that refuses.
    let _ = crossterm::execute!(
        std::io::stdout(),
        cursor::Show,
        terminal::LeaveAlternateScreen
    );
    let _ = terminal::disable_raw_mode();
}

pub(super) fn run(
    endpoint: &Endpoint,
    limits: &FetchLimits,
    interval: Duration,
    mut sort: Sort,
    first: UsersSummary,
) -> anyhow::Result<()> {
    // At least 100 ms, so a 0 interval does not hammer the daemon.
    let interval = interval.max(Duration::from_millis(100));
    let _guard = Guard::enter()?;
    let mut current = first;
    let mut previous: Option<UsersSummary> = None;
    let mut error: Option<String> = None;
    let mut next_poll = Instant::now() + interval;
    loop {
        draw(
            &current,
            previous.as_ref(),
            sort,
            error.as_deref(),
            endpoint,
        )?;
        let wait = next_poll.saturating_duration_since(Instant::now());
        if event::poll(wait)? {
            match event::read()? {
                Event::Key(key) if key.kind != KeyEventKind::Release => match key.code {
                    KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                    // Raw mode turns Ctrl-C into a key instead of SIGINT.
                    KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                        return Ok(());
                    }
                    KeyCode::Char('s') => sort.key = sort.key.next(),
                    KeyCode::Char('r') => sort.reverse = !sort.reverse,
                    _ => {}
                },
                _ => {}
            }
            continue;
        }
        next_poll = Instant::now() + interval;
        match fetch(endpoint, limits) {
            Ok(next) => {
                previous = Some(std::mem::replace(&mut current, next));
                error = None;
            }
            // Keep showing the last good view: a restarting daemon is back in a moment.
            Err(e) => error = Some(e.to_string()),
        }
    }
}

fn draw(
    summary: &UsersSummary,
    previous: Option<&UsersSummary>,
    sort: Sort,
    error: Option<&str>,
    endpoint: &Endpoint,
) -> std::io::Result<()> {
    let (cols, rows) = terminal::size()?;
    let (width, height) = (usize::from(cols), usize::from(rows));
    let mut lines = render(summary, previous, sort, width);
    let footer = match error {
        Some(e) => format!("! {}", clean(e)),
        None => format!("{}  q quit  s sort  r reverse", endpoint.url),
    };
    lines.truncate(height.saturating_sub(1));
    let mut out = std::io::stdout().lock();
    for (row, line) in lines.iter().enumerate() {
        queue!(
            out,
            cursor::MoveTo(0, u16::try_from(row).unwrap_or(u16::MAX)),
            Print(line),
            terminal::Clear(ClearType::UntilNewLine)
        )?;
    }
    queue!(
        out,
        terminal::Clear(ClearType::FromCursorDown),
        cursor::MoveTo(0, rows.saturating_sub(1)),
        Print(footer.chars().take(width).collect::<String>()),
        terminal::Clear(ClearType::UntilNewLine)
    )?;
    out.flush()
}
