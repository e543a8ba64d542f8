//! Onboarding and lifecycle as data: a reseller's onboarding checklist (tasks, some depending
//! on others) and a client's lifecycle (stages, each naming the stages it may move to). A host
//! replaces either through the config; the engine keeps each subject's progress.
//!
//! The reference names an 11-task onboarding checklist and a 12-stage customer journey without
//! listing them; the defaults below are those steps as a partner programme runs them.

use super::error::{Error, Result};

/// The most steps a workflow may have.
pub const STEPS_MAX: usize = 64;
/// The longest step key.
pub const KEY_LEN_MAX: usize = 64;
/// The longest step title.
pub const TITLE_LEN_MAX: usize = 200;

/// One onboarding task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    pub key: String,
    pub title: String,
    /// Counted in progress; an optional task is offered but not required.
    pub required: bool,
    /// Tasks that must be complete first.
    pub depends_on: Vec<String>,
}

/// A checklist of tasks, in display order; dependencies point to earlier tasks only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checklist {
    tasks: Vec<Task>,
}

/// One lifecycle stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stage {
    pub key: String,
    pub title: String,
    /// The stages it may move to.
    pub next: Vec<String>,
}

/// Lifecycle stages in journey order; the first is where a subject starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lifecycle {
    stages: Vec<Stage>,
}

fn check_key(key: &str, path: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= KEY_LEN_MAX
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key.chars().all(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            path,
            format!("expected a key of 1 to {KEY_LEN_MAX} ASCII letters and digits starting with a lowercase letter, got \"{}\"", super::decimal::printable(key)),
        ))
    }
}

fn check_title(title: &str, path: &str) -> Result<()> {
    if title.trim().is_empty() || title.len() > TITLE_LEN_MAX || title.chars().any(char::is_control)
    {
        return Err(Error::invalid(
            path,
            format!("expected a printable title of 1 to {TITLE_LEN_MAX} bytes"),
        ));
    }
    Ok(())
}

fn check_count(count: usize, path: &str) -> Result<()> {
    if count == 0 || count > STEPS_MAX {
        return Err(Error::invalid(
            path,
            format!("expected 1 to {STEPS_MAX} steps, got {count}"),
        ));
    }
    Ok(())
}

impl Checklist {
    /// Checks keys (unique), titles, and that every dependency names an earlier task (so there is
    /// no cycle). `path` names the config key in errors.
    pub fn new(tasks: Vec<Task>, path: &str) -> Result<Self> {
        check_count(tasks.len(), path)?;
        for (i, task) in tasks.iter().enumerate() {
            let at = format!("{path}[{i}]");
            check_key(&task.key, &format!("{at}.key"))?;
            check_title(&task.title, &format!("{at}.title"))?;
            if tasks[..i].iter().any(|t| t.key == task.key) {
                return Err(Error::invalid(
                    format!("{at}.key"),
                    format!("\"{}\" appears twice", task.key),
                ));
            }
            for dep in &task.depends_on {
                if !tasks[..i].iter().any(|t| &t.key == dep) {
                    return Err(Error::invalid(
                        format!("{at}.dependsOn"),
                        format!(
                            "\"{}\" is not an earlier task",
                            super::decimal::printable(dep)
                        ),
                    ));
                }
            }
        }
        if !tasks.iter().any(|t| t.required) {
            return Err(Error::invalid(path, "at least one task must be required"));
        }
        Ok(Self { tasks })
    }

    /// The partner onboarding checklist: 11 tasks.
    #[must_use]
    pub fn reference() -> Self {
        let task = |key: &str, title: &str, depends_on: &[&str]| Task {
            key: key.to_owned(),
            title: title.to_owned(),
            required: true,
            depends_on: depends_on.iter().map(|d| (*d).to_owned()).collect(),
        };
        Self {
            tasks: vec![
                task("agreement", "Sign the partner agreement", &[]),
                task(
                    "businessVerification",
                    "Verify the business",
                    &["agreement"],
                ),
                task("taxForms", "Submit tax forms", &["agreement"]),
                task(
                    "payoutDetails",
                    "Add payout bank details",
                    &["businessVerification"],
                ),
                task("portalAccess", "Activate portal access", &["agreement"]),
                task(
                    "productTraining",
                    "Complete product training",
                    &["portalAccess"],
                ),
                task(
                    "salesTraining",
                    "Complete sales training",
                    &["portalAccess"],
                ),
                task(
                    "technicalCertification",
                    "Pass the technical certification",
                    &["productTraining"],
                ),
                task(
                    "marketingKit",
                    "Receive the co-branded marketing kit",
                    &["portalAccess"],
                ),
                task(
                    "firstCredits",
                    "Buy the first credits",
                    &["payoutDetails", "portalAccess"],
                ),
                task(
                    "firstClient",
                    "Provision the first client",
                    &["firstCredits", "technicalCertification"],
                ),
            ],
        }
    }

    #[must_use]
    pub fn tasks(&self) -> &[Task] {
        &self.tasks
    }

    /// The task, or `INVALID_INPUT` naming `field`.
    pub fn task(&self, key: &str, field: &str) -> Result<&Task> {
        self.tasks.iter().find(|t| t.key == key).ok_or_else(|| {
            Error::invalid(
                field,
                format!(
                    "\"{}\" is not a task of the onboarding checklist",
                    super::decimal::printable(key)
                ),
            )
        })
    }

    /// Whether `key` may be completed after `done`: it is not done yet and its dependencies are.
    pub fn check_complete(&self, key: &str, done: &[String]) -> Result<()> {
        let task = self.task(key, "task")?;
        if done.iter().any(|d| d == key) {
            return Err(Error::invalid(
                "task",
                format!("\"{key}\" is already complete"),
            ));
        }
        let missing: Vec<&str> = task
            .depends_on
            .iter()
            .filter(|d| !done.contains(d))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(Error::invalid(
                "task",
                format!("\"{key}\" waits for {}", missing.join(", ")),
            ));
        }
        Ok(())
    }

    /// Whether `key` may be reopened: it is done and no done task depends on it.
    pub fn check_reopen(&self, key: &str, done: &[String]) -> Result<()> {
        self.task(key, "task")?;
        if !done.iter().any(|d| d == key) {
            return Err(Error::invalid("task", format!("\"{key}\" is not complete")));
        }
        let dependants: Vec<&str> = self
            .tasks
            .iter()
            .filter(|t| done.contains(&t.key) && t.depends_on.iter().any(|d| d == key))
            .map(|t| t.key.as_str())
            .collect();
        if !dependants.is_empty() {
            return Err(Error::invalid(
                "task",
                format!(
                    "\"{key}\" is needed by {}, which are complete",
                    dependants.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// Required tasks done, of all required, and the progress in hundredths of a percent
    /// (rounded down, so 100.00 means every required task is done).
    #[must_use]
    pub fn progress(&self, done: &[String]) -> (u32, u32, u32) {
        let required = self.tasks.iter().filter(|t| t.required);
        let total = required.clone().count() as u32;
        let completed = required.filter(|t| done.contains(&t.key)).count() as u32;
        (completed, total, completed * 10_000 / total.max(1))
    }

    /// The tasks that may be done now: not done, dependencies done.
    #[must_use]
    pub fn available(&self, done: &[String]) -> Vec<&str> {
        self.tasks
            .iter()
            .filter(|t| !done.contains(&t.key) && t.depends_on.iter().all(|d| done.contains(d)))
            .map(|t| t.key.as_str())
            .collect()
    }
}

impl Lifecycle {
    /// Checks keys (unique), titles, and that every `next` names a stage.
    pub fn new(stages: Vec<Stage>, path: &str) -> Result<Self> {
        check_count(stages.len(), path)?;
        for (i, stage) in stages.iter().enumerate() {
            let at = format!("{path}[{i}]");
            check_key(&stage.key, &format!("{at}.key"))?;
            check_title(&stage.title, &format!("{at}.title"))?;
            if stages[..i].iter().any(|s| s.key == stage.key) {
                return Err(Error::invalid(
                    format!("{at}.key"),
                    format!("\"{}\" appears twice", stage.key),
                ));
            }
        }
        for (i, stage) in stages.iter().enumerate() {
            for next in &stage.next {
                if next == &stage.key || !stages.iter().any(|s| &s.key == next) {
                    return Err(Error::invalid(
                        format!("{path}[{i}].next"),
                        format!(
                            "\"{}\" is not another stage",
                            super::decimal::printable(next)
                        ),
                    ));
                }
            }
        }
        Ok(Self { stages })
    }

    /// The customer journey: 12 stages, forward one at a time, with `atRisk` reachable from
    /// the live stages, and `churned` from there (a churned customer may be won back as a lead).
    #[must_use]
    pub fn reference() -> Self {
        let stage = |key: &str, title: &str, next: &[&str]| Stage {
            key: key.to_owned(),
            title: title.to_owned(),
            next: next.iter().map(|n| (*n).to_owned()).collect(),
        };
        Self {
            stages: vec![
                stage("prospect", "Prospect", &["lead"]),
                stage("lead", "Lead", &["qualified", "churned"]),
                stage("qualified", "Qualified", &["proposal", "churned"]),
                stage("proposal", "Proposal sent", &["negotiation", "churned"]),
                stage("negotiation", "Negotiation", &["contracted", "churned"]),
                stage("contracted", "Contract signed", &["onboarding"]),
                stage("onboarding", "Onboarding", &["active", "atRisk"]),
                stage("active", "Active", &["expansion", "renewal", "atRisk"]),
                stage("expansion", "Expansion", &["active", "renewal", "atRisk"]),
                stage("renewal", "Renewal", &["active", "atRisk", "churned"]),
                stage("atRisk", "At risk", &["active", "churned"]),
                stage("churned", "Churned", &["lead"]),
            ],
        }
    }

    #[must_use]
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// The first stage: where every subject starts.
    #[must_use]
    pub fn first(&self) -> &Stage {
        &self.stages[0]
    }

    /// The stage, or `INVALID_INPUT` naming `field`.
    pub fn stage(&self, key: &str, field: &str) -> Result<&Stage> {
        self.stages.iter().find(|s| s.key == key).ok_or_else(|| {
            Error::invalid(
                field,
                format!(
                    "\"{}\" is not a lifecycle stage",
                    super::decimal::printable(key)
                ),
            )
        })
    }

    /// Moving from `from` to `to`: allowed when `from` lists it, `STATUS_TRANSITION_DENIED`
    /// otherwise.
    pub fn check_move(&self, subject: &str, from: &str, to: &str) -> Result<()> {
        let target = self.stage(to, "stage")?;
        let current = self.stage(from, "stage")?;
        if current.next.iter().any(|n| n == &target.key) {
            Ok(())
        } else {
            Err(Error::StatusTransitionDenied {
                entity: "lifecycle of client",
                key: subject.to_owned(),
                from: format!("at stage {from}").into(),
                action: format!("moved to {to}").into(),
            })
        }
    }

    /// How far along the journey a stage is, in hundredths of a percent (first 0, last 100).
    #[must_use]
    pub fn progress(&self, key: &str) -> u32 {
        let at = self.stages.iter().position(|s| s.key == key).unwrap_or(0) as u32;
        let last = (self.stages.len() as u32).saturating_sub(1).max(1);
        at * 10_000 / last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|k| (*k).to_owned()).collect()
    }

    #[test]
    fn the_reference_checklist_follows_its_dependencies() {
        let list = Checklist::reference();
        assert_eq!(list.tasks().len(), 11);
        assert_eq!(list.available(&[]), vec!["agreement"]);
        assert!(list.check_complete("taxForms", &[]).is_err());
        let d = done(&["agreement"]);
        assert!(list.check_complete("taxForms", &d).is_ok());
        assert!(list.check_complete("agreement", &d).is_err());
        assert_eq!(list.progress(&d), (1, 11, 909));
        let all: Vec<String> = list.tasks().iter().map(|t| t.key.clone()).collect();
        assert_eq!(list.progress(&all), (11, 11, 10_000));
        assert!(list.check_reopen("agreement", &d).is_ok());
        assert!(list
            .check_reopen("agreement", &done(&["agreement", "taxForms"]))
            .is_err());
        assert!(list.check_reopen("taxForms", &d).is_err());
        assert!(list.task("lunch", "task").is_err());
    }

    #[test]
    fn a_checklist_is_checked_when_built() {
        let task = |key: &str, deps: &[&str]| Task {
            key: key.to_owned(),
            title: "T".to_owned(),
            required: true,
            depends_on: deps.iter().map(|d| (*d).to_owned()).collect(),
        };
        assert!(Checklist::new(vec![task("a", &[]), task("b", &["a"])], "c").is_ok());
        assert!(Checklist::new(vec![task("a", &["b"]), task("b", &[])], "c").is_err());
        assert!(Checklist::new(vec![task("a", &[]), task("a", &[])], "c").is_err());
        assert!(Checklist::new(vec![task("A b", &[])], "c").is_err());
        assert!(Checklist::new(vec![], "c").is_err());
        let optional = Task {
            required: false,
            ..task("a", &[])
        };
        assert!(Checklist::new(vec![optional], "c").is_err());
    }

    #[test]
    fn the_reference_lifecycle_moves_along_its_table() {
        let life = Lifecycle::reference();
        assert_eq!(life.stages().len(), 12);
        assert_eq!(life.first().key, "prospect");
        assert!(life.check_move("cl_1", "prospect", "lead").is_ok());
        let denied = life.check_move("cl_1", "prospect", "active");
        assert_eq!(
            denied.err().map(|e| e.code().as_str()),
            Some("STATUS_TRANSITION_DENIED")
        );
        assert!(life.check_move("cl_1", "active", "atRisk").is_ok());
        assert!(life.check_move("cl_1", "churned", "lead").is_ok());
        assert_eq!(
            life.check_move("cl_1", "active", "moon")
                .err()
                .map(|e| e.code().as_str()),
            Some("INVALID_INPUT")
        );
        assert_eq!(life.progress("prospect"), 0);
        assert_eq!(life.progress("churned"), 10_000);
        assert_eq!(life.progress("active"), 6_363);
        let stage = |key: &str, next: &[&str]| Stage {
            key: key.to_owned(),
            title: "S".to_owned(),
            next: next.iter().map(|n| (*n).to_owned()).collect(),
        };
        assert!(Lifecycle::new(vec![stage("a", &["b"]), stage("b", &[])], "l").is_ok());
        assert!(Lifecycle::new(vec![stage("a", &["z"])], "l").is_err());
        assert!(Lifecycle::new(vec![stage("a", &["a"])], "l").is_err());
    }
}
