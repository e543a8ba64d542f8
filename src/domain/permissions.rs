//! The reference's permission checks between resellers and their clients (child accounts): a
//! reseller acts only while active (approved), and only on its own clients.

use super::client::{Client, ClientStatus};
use super::reseller::{Reseller, ResellerStatus};

/// Whether `reseller` may manage `client`: only its own clients, only while it is active.
#[must_use]
pub fn can_manage_child_account(reseller: &Reseller, client: &Client) -> bool {
    reseller.status == ResellerStatus::Active
        && client.reseller_id.as_deref() == Some(reseller.id.as_str())
}

/// Whether `reseller` may open the reseller dashboard: while it is active.
#[must_use]
pub fn can_view_reseller_dashboard(reseller: &Reseller) -> bool {
    reseller.status == ResellerStatus::Active
}

/// Whether `reseller` may take `client` as a child account: it is active, and the client is
/// standalone or already its own, and not inactive.
#[must_use]
pub fn can_assign_child_account(reseller: &Reseller, client: &Client) -> bool {
    reseller.status == ResellerStatus::Active
        && client.status != ClientStatus::Inactive
        && client
            .reseller_id
            .as_deref()
            .is_none_or(|owner| owner == reseller.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::client::ClientDraft;
    use crate::domain::reseller::{self, ResellerDraft, UserId};
    use crate::domain::tier::{TierName, TierTable};
    use chrono::DateTime;

    fn reseller(id: &str, status: ResellerStatus) -> Reseller {
        let at = DateTime::from_timestamp(0, 0).unwrap_or_default();
        let draft = ResellerDraft {
            user_id: Some(UserId::Number(1)),
            company_name: Some("R".into()),
            ..ResellerDraft::default()
        };
        let r = reseller::create(
            draft,
            id.into(),
            "RS-1".into(),
            &TierTable::reference(),
            &TierName::from_literal("standard"),
            at,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Reseller { status, ..r }
    }

    fn client(owner: Option<&str>, status: ClientStatus) -> Client {
        let at = DateTime::from_timestamp(0, 0).unwrap_or_default();
        let draft = ClientDraft {
            name: Some("C".into()),
            reseller_id: owner.map(str::to_owned),
            ..ClientDraft::default()
        };
        let c = Client::create(draft, "cl_1".into(), "CL-1".into(), at)
            .unwrap_or_else(|e| panic!("{e}"));
        Client { status, ..c }
    }

    #[test]
    fn the_permission_table() {
        use ClientStatus::{Active as On, Inactive as Off};
        use ResellerStatus::{Active, Suspended};
        // (reseller status, client owner, client status) → (manage, assign)
        let table = [
            (Active, Some("rs_a"), On, true, true),
            (Active, Some("rs_b"), On, false, false),
            (Active, None, On, false, true),
            (Active, Some("rs_a"), Off, true, false),
            (Suspended, Some("rs_a"), On, false, false),
            (Suspended, None, On, false, false),
        ];
        for (status, owner, client_status, manage, assign) in table {
            let r = reseller("rs_a", status);
            let c = client(owner, client_status);
            assert_eq!(
                can_manage_child_account(&r, &c),
                manage,
                "{status:?} {owner:?} {client_status:?}"
            );
            assert_eq!(
                can_assign_child_account(&r, &c),
                assign,
                "{status:?} {owner:?} {client_status:?}"
            );
            assert_eq!(can_view_reseller_dashboard(&r), status == Active);
        }
    }
}
