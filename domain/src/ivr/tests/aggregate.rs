//! Given/when/then for the IVR flow aggregate: drafts saved even when invalid, publishing only
//! valid drafts as immutable versions, republishing an earlier one, archiving.

use cqrs_es::test::TestFramework;
use cqrs_es::DomainEvent;
use serde_json::{json, Value};

use super::*;

type Given = TestFramework<IvrFlow>;

fn at(minute: u32) -> DateTime<Utc> {
    utc(2026, 11, 24, 9, minute)
}

fn created() -> IvrFlowEvent {
    IvrFlowEvent::IvrFlowCreated { flow: support_flow(), at: at(0) }
}

fn published(version: u32, flow: Flow) -> IvrFlowEvent {
    IvrFlowEvent::IvrFlowPublished { version, flow, at: at(version) }
}

fn publish(minute: u32) -> IvrFlowCommand {
    IvrFlowCommand::PublishIvrFlow { context: ValidationContext::default(), at: at(minute) }
}

fn patch(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().cloned().expect("object")
}

fn broken() -> Flow {
    let mut flow = support_flow();
    node_mut(&mut flow, "welcome").next_node = some("nowhere");
    flow
}

fn renamed(name: &str) -> Flow {
    Flow { name: name.into(), ..support_flow() }
}

#[test]
fn a_flow_is_created_with_its_draft() {
    Given::with(())
        .given_no_previous_events()
        .when(IvrFlowCommand::CreateIvrFlow { flow: support_flow(), at: at(0) })
        .then_expect_events(vec![created()]);
    Given::with(())
        .given(vec![created()])
        .when(IvrFlowCommand::CreateIvrFlow { flow: support_flow(), at: at(1) })
        .then_expect_error(IvrFlowError::AlreadyExists);
}

#[test]
fn a_draft_needs_a_name_but_not_a_valid_graph() {
    let result = Given::with(())
        .given_no_previous_events()
        .when(IvrFlowCommand::CreateIvrFlow { flow: renamed("  "), at: at(0) })
        .inspect_result();
    let Err(IvrFlowError::InvalidFlow(problems)) = result else { panic!("{result:?}") };
    assert_eq!(
        problems.iter().map(|p| (p.field.as_ref(), p.code)).collect::<Vec<_>>(),
        [("name", "required")]
    );
    // A repeated id cannot be stored faithfully: refused, not saved.
    let mut repeated = support_flow();
    repeated.nodes.push("goodbye", node(NodeType::EndCall, |_| {}));
    let result = Given::with(())
        .given(vec![created()])
        .when(IvrFlowCommand::ReplaceIvrFlowDraft { flow: repeated, at: at(1) })
        .inspect_result();
    let Err(IvrFlowError::InvalidFlow(problems)) = result else { panic!("{result:?}") };
    assert_eq!(
        problems.iter().map(|p| (p.field.as_ref(), p.code)).collect::<Vec<_>>(),
        [("nodes.goodbye", "duplicate_key")]
    );
    // An invalid graph is saved as a draft.
    Given::with(())
        .given(vec![created()])
        .when(IvrFlowCommand::ReplaceIvrFlowDraft { flow: broken(), at: at(1) })
        .then_expect_events(vec![IvrFlowEvent::IvrFlowDraftUpdated {
            flow: broken(),
            changed: vec!["nodes".into()],
            at: at(1),
        }]);
}

#[test]
fn an_invalid_draft_cannot_be_published() {
    let result = Given::with(())
        .given(vec![
            created(),
            IvrFlowEvent::IvrFlowDraftUpdated { flow: broken(), changed: vec!["nodes".into()], at: at(1) },
        ])
        .when(publish(2))
        .inspect_result();
    let Err(IvrFlowError::NotPublishable(issues)) = result else { panic!("{result:?}") };
    assert!(issues
        .iter()
        .any(|i| i.code == IssueCode::DanglingLink && i.node_id.as_deref() == Some("welcome")));
}

#[test]
fn the_publish_context_applies_the_webhook_allow_list() {
    let context = ValidationContext {
        webhooks: WebhookPolicy {
            allowed_hosts: Some(vec!["hooks.example.org".into()]),
            allow_private: false,
        },
        ..ValidationContext::default()
    };
    let result = Given::with(())
        .given(vec![created()])
        .when(IvrFlowCommand::PublishIvrFlow { context, at: at(1) })
        .inspect_result();
    let Err(IvrFlowError::NotPublishable(issues)) = result else { panic!("{result:?}") };
    assert_eq!(issues.iter().map(|i| i.code).collect::<Vec<_>>(), [IssueCode::WebhookHostNotAllowed]);
}

#[test]
fn publishing_makes_the_next_version_and_an_unchanged_draft_none() {
    Given::with(())
        .given(vec![created()])
        .when(publish(1))
        .then_expect_events(vec![published(1, support_flow())]);
    Given::with(())
        .given(vec![created(), published(1, support_flow())])
        .when(publish(2))
        .then_expect_events(vec![]);
    Given::with(())
        .given(vec![
            created(),
            published(1, support_flow()),
            IvrFlowEvent::IvrFlowDraftUpdated {
                flow: renamed("Support v2"),
                changed: vec!["name".into()],
                at: at(2),
            },
        ])
        .when(publish(2))
        .then_expect_events(vec![published(2, renamed("Support v2"))]);
}

#[test]
fn a_patch_edits_one_node_or_removes_it() {
    let mut flow = support_flow();
    node_mut(&mut flow, "welcome").message = text("Hello.");
    Given::with(())
        .given(vec![created()])
        .when(IvrFlowCommand::UpdateIvrFlowDraft {
            patch: patch(json!({"nodes": {"welcome": {"message": "Hello."}}})),
            at: at(1),
        })
        .then_expect_events(vec![IvrFlowEvent::IvrFlowDraftUpdated {
            flow,
            changed: vec!["nodes".into()],
            at: at(1),
        }]);
    let mut flow = support_flow();
    flow.nodes.remove("pay");
    Given::with(())
        .given(vec![created()])
        .when(IvrFlowCommand::UpdateIvrFlowDraft { patch: patch(json!({"nodes": {"pay": null}})), at: at(1) })
        .then_expect_events(vec![IvrFlowEvent::IvrFlowDraftUpdated {
            flow,
            changed: vec!["nodes".into()],
            at: at(1),
        }]);
}

#[test]
fn a_patch_that_changes_nothing_or_is_not_a_flow() {
    Given::with(())
        .given(vec![created()])
        .when(IvrFlowCommand::UpdateIvrFlowDraft { patch: patch(json!({"name": "Support"})), at: at(1) })
        .then_expect_events(vec![]);
    let result = Given::with(())
        .given(vec![created()])
        .when(IvrFlowCommand::UpdateIvrFlowDraft {
            patch: patch(json!({"nodes": {"welcome": {"type": "teleport"}}})),
            at: at(1),
        })
        .inspect_result();
    let Err(IvrFlowError::InvalidFlow(problems)) = result else { panic!("{result:?}") };
    assert_eq!(problems[0].field, "nodes.welcome.type");
}

#[test]
fn an_earlier_version_can_be_made_live_again() {
    let history = || vec![created(), published(1, support_flow()), published(2, renamed("Support v2"))];
    Given::with(())
        .given(history())
        .when(IvrFlowCommand::RepublishIvrFlowVersion { version: 1, at: at(3) })
        .then_expect_events(vec![IvrFlowEvent::IvrFlowVersionRepublished {
            version: 1,
            previous: Some(2),
            at: at(3),
        }]);
    Given::with(())
        .given(history())
        .when(IvrFlowCommand::RepublishIvrFlowVersion { version: 2, at: at(3) })
        .then_expect_events(vec![]);
    for missing in [0, 3] {
        Given::with(())
            .given(history())
            .when(IvrFlowCommand::RepublishIvrFlowVersion { version: missing, at: at(3) })
            .then_expect_error(IvrFlowError::UnknownVersion(missing));
    }
}

#[test]
fn after_a_rollback_publishing_the_draft_makes_a_new_version() {
    let mut history = vec![created(), published(1, support_flow())];
    history.push(IvrFlowEvent::IvrFlowDraftUpdated {
        flow: renamed("Support v2"),
        changed: vec!["name".into()],
        at: at(2),
    });
    history.push(published(2, renamed("Support v2")));
    history.push(IvrFlowEvent::IvrFlowVersionRepublished { version: 1, previous: Some(2), at: at(3) });
    Given::with(())
        .given(history)
        .when(publish(3))
        .then_expect_events(vec![published(3, renamed("Support v2"))]);
}

#[test]
fn an_archived_flow_changes_no_more() {
    Given::with(())
        .given(vec![created()])
        .when(IvrFlowCommand::ArchiveIvrFlow { at: at(1) })
        .then_expect_events(vec![IvrFlowEvent::IvrFlowArchived { at: at(1) }]);
    let archived =
        || vec![created(), published(1, support_flow()), IvrFlowEvent::IvrFlowArchived { at: at(2) }];
    for command in [
        publish(3),
        IvrFlowCommand::ReplaceIvrFlowDraft { flow: renamed("Again"), at: at(3) },
        IvrFlowCommand::RepublishIvrFlowVersion { version: 1, at: at(3) },
        IvrFlowCommand::ArchiveIvrFlow { at: at(3) },
    ] {
        Given::with(()).given(archived()).when(command).then_expect_error(IvrFlowError::Archived);
    }
}

#[test]
fn nothing_but_creation_works_before_creation() {
    for command in [publish(1), IvrFlowCommand::ArchiveIvrFlow { at: at(1) }] {
        Given::with(()).given_no_previous_events().when(command).then_expect_error(IvrFlowError::NotFound);
    }
}

#[test]
fn events_have_stable_names_and_survive_json() {
    let events = [
        created(),
        IvrFlowEvent::IvrFlowDraftUpdated { flow: broken(), changed: vec!["nodes".into()], at: at(1) },
        published(1, support_flow()),
        IvrFlowEvent::IvrFlowVersionRepublished { version: 1, previous: None, at: at(2) },
        IvrFlowEvent::IvrFlowArchived { at: at(3) },
    ];
    let names: Vec<String> = events.iter().map(DomainEvent::event_type).collect();
    assert_eq!(
        names,
        [
            "IvrFlowCreated",
            "IvrFlowDraftUpdated",
            "IvrFlowPublished",
            "IvrFlowVersionRepublished",
            "IvrFlowArchived"
        ]
    );
    for e in events {
        let back: IvrFlowEvent =
            serde_json::from_value(serde_json::to_value(&e).expect("json")).expect("reads");
        assert_eq!(back, e);
    }
}

#[test]
fn the_state_follows_the_versions() {
    let mut state = IvrFlow::default();
    for e in [created(), published(1, support_flow()), published(2, renamed("v2"))] {
        cqrs_es::Aggregate::apply(&mut state, e);
    }
    cqrs_es::Aggregate::apply(
        &mut state,
        IvrFlowEvent::IvrFlowVersionRepublished { version: 1, previous: Some(2), at: at(3) },
    );
    assert_eq!((state.latest_version, state.live_version), (2, Some(1)));
    assert_eq!(state.latest_flow.map(|f| f.name), Some("v2".into()));
}
