//! The poll panel (on our server; the browser version's relay has no polls). An instructor
//! writes a poll and opens it, watches the answers come in, closes it and shows everyone the
//! results; a student answers, may change the answer until the poll closes, and sees the
//! results once an instructor shows them.

use classroom_wire::{Moderation, PollKind, PollResults};
use egui::RichText;

use crate::session::PollView;
use crate::ui::model::{ClassView, PollForm, UiAction, UiModel};

pub fn show(ui: &mut egui::Ui, model: &mut UiModel, actions: &mut Vec<UiAction>) {
    ui.add_space(6.0);
    ui.heading("Poll");
    ui.separator();
    let class = &model.live.snapshot.class;
    let instructor = class.is_instructor;
    let poll = class.poll.clone();
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show(ui, |ui| match (poll, instructor) {
            (Some(view), true) if !view.closed => running(ui, &view, actions),
            (last, true) => {
                if let Some(view) = last {
                    closed(ui, &view, actions);
                    ui.separator();
                }
                new_poll(ui, &mut model.class.poll_draft, actions);
            }
            (Some(view), false) => answer(ui, &view, &mut model.class, actions),
            (None, false) => {
                ui.label(
                    RichText::new("No poll right now. When your instructor asks one, it is here.")
                        .weak(),
                );
            }
        });
}

/// Whether the control bar offers the poll panel, and whether a poll waits for our answer.
pub fn offered(model: &UiModel) -> (bool, bool) {
    let snapshot = &model.live.snapshot;
    let ours = snapshot.server.is_some_and(|s| s.has_extensions());
    let class = &snapshot.class;
    let waiting = class.poll.as_ref().is_some_and(|view| {
        !class.is_instructor
            && !view.closed
            && view.our_choices.is_empty()
            && view.our_text.is_none()
    });
    (
        ours && (class.is_instructor || class.poll.is_some()),
        waiting,
    )
}

fn kind_words(kind: PollKind) -> &'static str {
    match kind {
        PollKind::YesNo => "Yes or no",
        PollKind::Single => "One answer",
        PollKind::Multiple => "Any number of answers",
        PollKind::Text => "A short typed answer",
    }
}

/// The instructor's open poll: the answers so far, and what to do next.
fn running(ui: &mut egui::Ui, view: &PollView, actions: &mut Vec<UiAction>) {
    question(ui, view);
    match &view.results {
        Some(results) => tally(ui, results),
        None => {
            ui.label(RichText::new("No answers yet").weak());
        }
    }
    ui.add_space(6.0);
    ui.horizontal_wrapped(|ui| {
        if ui
            .button("Close poll")
            .on_hover_text("Take no more answers")
            .clicked()
        {
            actions.push(UiAction::Moderate(Moderation::ClosePoll {
                poll_id: view.poll.poll_id.clone(),
            }));
        }
        publish_button(ui, view, actions);
    });
}

/// The instructor's last poll, closed: its results, and showing them to the class.
fn closed(ui: &mut egui::Ui, view: &PollView, actions: &mut Vec<UiAction>) {
    question(ui, view);
    ui.label(RichText::new("Closed").weak());
    if let Some(results) = &view.results {
        tally(ui, results);
    }
    publish_button(ui, view, actions);
}

fn publish_button(ui: &mut egui::Ui, view: &PollView, actions: &mut Vec<UiAction>) {
    if ui
        .button("Show results to everyone")
        .on_hover_text("Totals for the class, without names")
        .clicked()
    {
        actions.push(UiAction::Moderate(Moderation::PublishResults {
            poll_id: view.poll.poll_id.clone(),
        }));
    }
}

fn question(ui: &mut egui::Ui, view: &PollView) {
    ui.label(RichText::new(&view.poll.question).strong().size(15.0));
    ui.label(RichText::new(kind_words(view.poll.kind)).weak().size(12.0));
    ui.add_space(4.0);
}

/// Totals as bars, or the typed answers, with how many answered.
fn tally(ui: &mut egui::Ui, results: &PollResults) {
    let voters = results.voters.max(1) as f32;
    for (i, option) in results.options.iter().enumerate() {
        let count = results.totals.get(i).copied().unwrap_or(0);
        let right = results
            .correct
            .as_ref()
            .is_some_and(|correct| correct.contains(&i));
        let label = format!("{option}{}: {count}", if right { " ✔" } else { "" });
        ui.add(egui::ProgressBar::new(count as f32 / voters).text(label));
    }
    let typed = results
        .answers
        .iter()
        .filter_map(|a| a.text.as_ref().map(|t| format!("{}: {t}", a.user_name)))
        .chain(results.texts.iter().cloned());
    for answer in typed {
        ui.add(egui::Label::new(answer).wrap());
    }
    let word = if results.voters == 1 {
        "answer"
    } else {
        "answers"
    };
    ui.label(RichText::new(format!("{} {word}", results.voters)).weak());
}

/// A student's side: the question, the choices (ours marked), the results once shown.
fn answer(ui: &mut egui::Ui, view: &PollView, form: &mut ClassView, actions: &mut Vec<UiAction>) {
    question(ui, view);
    let open = !view.closed;
    let options = &view.poll.options;
    // What we tick or type is for this poll; a new one starts from our answer to it.
    if form.poll_answering.as_deref() != Some(view.poll.poll_id.as_str()) {
        form.poll_answering = Some(view.poll.poll_id.clone());
        form.poll_choices = view.our_choices.clone();
        form.poll_text.clear();
    }
    match view.poll.kind {
        PollKind::YesNo | PollKind::Single => {
            for (i, option) in options.iter().enumerate() {
                let chosen = view.our_choices == [i];
                let button =
                    ui.add_enabled(open, egui::Button::selectable(chosen, option.as_str()));
                if button.clicked() && !chosen {
                    actions.push(UiAction::Vote {
                        choices: vec![i],
                        text: None,
                    });
                }
            }
        }
        PollKind::Multiple => {
            for (i, option) in options.iter().enumerate() {
                let mut on = form.poll_choices.contains(&i);
                if ui
                    .add_enabled(open, egui::Checkbox::new(&mut on, option.as_str()))
                    .changed()
                {
                    form.poll_choices.retain(|&c| c != i);
                    if on {
                        form.poll_choices.push(i);
                        form.poll_choices.sort_unstable();
                    }
                }
            }
            let changed = form.poll_choices != view.our_choices;
            if ui
                .add_enabled(
                    open && changed && !form.poll_choices.is_empty(),
                    egui::Button::new("Send answer"),
                )
                .clicked()
            {
                actions.push(UiAction::Vote {
                    choices: form.poll_choices.clone(),
                    text: None,
                });
            }
        }
        PollKind::Text => {
            ui.add_enabled(
                open,
                egui::TextEdit::singleline(&mut form.poll_text).hint_text("Your answer"),
            );
            let typed = form.poll_text.trim().to_owned();
            if ui
                .add_enabled(open && !typed.is_empty(), egui::Button::new("Send answer"))
                .clicked()
            {
                actions.push(UiAction::Vote {
                    choices: Vec::new(),
                    text: Some(typed),
                });
                form.poll_text.clear();
            }
        }
    }
    ui.add_space(4.0);
    let ours: Vec<&str> = view
        .our_choices
        .iter()
        .filter_map(|&i| options.get(i).map(String::as_str))
        .chain(view.our_text.as_deref())
        .collect();
    let status = match (open, ours.is_empty()) {
        (true, false) => format!(
            "Your answer: {}. You can change it until the poll closes.",
            ours.join(", ")
        ),
        (true, true) => "Choose your answer.".to_owned(),
        (false, false) => format!("The poll is closed. Your answer: {}.", ours.join(", ")),
        (false, true) => "The poll is closed.".to_owned(),
    };
    ui.add(egui::Label::new(RichText::new(status).weak()).wrap());
    if let Some(results) = &view.results {
        ui.add_space(6.0);
        ui.label(RichText::new("Results").strong());
        tally(ui, results);
    }
}

/// The instructor's form for a new poll.
fn new_poll(ui: &mut egui::Ui, draft: &mut PollForm, actions: &mut Vec<UiAction>) {
    ui.label(RichText::new("New poll").strong());
    ui.add(
        egui::TextEdit::singleline(&mut draft.question)
            .hint_text("Question")
            .desired_width(f32::INFINITY),
    )
    .on_hover_text("The poll's question");
    ui.horizontal_wrapped(|ui| {
        for kind in [
            PollKind::Single,
            PollKind::Multiple,
            PollKind::YesNo,
            PollKind::Text,
        ] {
            ui.radio_value(&mut draft.kind, kind, kind_words(kind));
        }
    });
    if matches!(draft.kind, PollKind::Single | PollKind::Multiple) {
        ui.add(
            egui::TextEdit::multiline(&mut draft.options)
                .hint_text("Options, one per line")
                .desired_rows(3)
                .desired_width(f32::INFINITY),
        )
        .on_hover_text("The poll's options, one per line");
    }
    let missing = draft.missing();
    let open = ui
        .add_enabled(missing.is_none(), egui::Button::new("Open poll"))
        .on_disabled_hover_text(missing.unwrap_or_default());
    if let Some(missing) = missing {
        ui.label(RichText::new(missing).weak().size(12.0));
    }
    if open.clicked() {
        actions.push(UiAction::Moderate(Moderation::OpenPoll {
            poll: draft.draft(),
        }));
        *draft = PollForm::default();
    }
}
