//! HubSpot's lifecycle stage only moves forward.
//!
//! subscriber < lead < marketingqualifiedlead < salesqualifiedlead < opportunity <
//! customer < evangelist. `other` sits below them all, so nothing ever "promotes" a
//! contact to `other`, and a contact in `other` may move to any stage. A custom stage (a
//! portal-specific id) has no known rank: writes to or from it are allowed, since we
//! cannot tell whether they go backwards.

/// HubSpot's default lifecycle stages, in order, as their internal values.
pub const STAGES: [&str; 7] = [
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
];

/// The HubSpot property that holds it.
pub const PROPERTY: &str = "lifecyclestage";

/// The rank of a stage: `other` is 0, `subscriber` 1 ... `evangelist` 7; `None` for a
/// custom stage.
pub fn rank(stage: &str) -> Option<usize> {
    let stage = stage.trim();
    if stage.eq_ignore_ascii_case("other") {
        return Some(0);
    }
    STAGES
        .iter()
        .position(|s| s.eq_ignore_ascii_case(stage))
        .map(|i| i + 1)
}

/// Whether a contact at `current` may be set to `next`. A blank current stage accepts
/// anything; a blank `next` would erase the stage and is refused like any step back.
pub fn may_move(current: &str, next: &str) -> bool {
    if current.trim().is_empty() {
        return true;
    }
    if next.trim().is_empty() {
        return false;
    }
    match (rank(current), rank(next)) {
        (Some(c), Some(n)) => n >= c,
        _ => true,
    }
}

/// The state of one opportunity a contact joins through a contact role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpportunityState {
    Open,
    Won,
    Lost,
}

impl OpportunityState {
    /// From an Opportunity's `IsClosed` and `IsWon`.
    pub fn of(closed: bool, won: bool) -> Self {
        match (closed, won) {
            (_, true) => OpportunityState::Won,
            (true, false) => OpportunityState::Lost,
            (false, false) => OpportunityState::Open,
        }
    }
}

/// The stage "lifecycle stage from opportunity stage" moves a contact to, given the
/// opportunities its Salesforce contact has roles on: `customer` once one is won,
/// `opportunity` while one is open; `None` when that would not move it forward.
pub fn stage_from_opportunities(
    current: Option<&str>,
    opportunities: &[OpportunityState],
) -> Option<&'static str> {
    let target = if opportunities.contains(&OpportunityState::Won) {
        "customer"
    } else if opportunities.contains(&OpportunityState::Open) {
        "opportunity"
    } else {
        return None;
    };
    let current = current.unwrap_or("");
    (may_move(current, target) && rank(current) != rank(target)).then_some(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_forward_and_stays() {
        assert!(may_move("lead", "customer"));
        assert!(may_move("lead", "lead"));
        assert!(!may_move("customer", "opportunity"));
        assert!(!may_move("customer", ""));
        assert!(may_move("", "subscriber"));
    }

    #[test]
    fn other_never_promotes() {
        assert!(!may_move("lead", "other"));
        assert!(may_move("other", "lead"));
    }

    #[test]
    fn custom_stages_are_not_judged() {
        assert!(may_move("1234567", "lead"));
        assert!(may_move("customer", "1234567"));
    }

    #[test]
    fn opportunities_move_contacts_forward_only() {
        use OpportunityState::*;
        assert_eq!(
            stage_from_opportunities(Some("lead"), &[Open]),
            Some("opportunity")
        );
        assert_eq!(
            stage_from_opportunities(Some("lead"), &[Lost, Won]),
            Some("customer")
        );
        assert_eq!(stage_from_opportunities(Some("customer"), &[Open]), None);
        assert_eq!(stage_from_opportunities(Some("opportunity"), &[Open]), None);
        assert_eq!(stage_from_opportunities(None, &[Lost]), None);
    }
}
