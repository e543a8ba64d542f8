//! Notifications as data: what a mail says, decided from the facts, sent later by the engine
//! through the host's mailer.

use super::ledger::LowCredit;
use super::reseller::Reseller;

/// A message for the host's mailer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailMessage {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// What the mail is about, e.g. `lowCredit`.
    pub kind: String,
    /// Stable per logical message, so a host can drop a duplicate delivery.
    pub idempotency_key: String,
}

/// The kind of the low-credit notification.
pub const LOW_CREDIT: &str = "lowCredit";

/// The reseller's low-credit mail (the reference's `LowCreditNotification`), or `None` when the
/// reseller has no email address to send it to.
#[must_use]
pub fn low_credit_mail(
    reseller: &Reseller,
    crossing: &LowCredit,
    dashboard_url: &str,
) -> Option<MailMessage> {
    let to = reseller.email.clone()?;
    let company = &reseller.company_name;
    let (balance, threshold) = (crossing.balance, crossing.threshold);
    let subject = format!("{company}: credit balance low ({balance} credits)");
    let text = format!(
        "Hello {company},\n\n\
         Your credit balance is {balance} credits, below the threshold of {threshold} credits.\n\
         Top up to keep provisioning services for your clients:\n{dashboard_url}\n"
    );
    let (company_html, url_html) = (escape_html(company), escape_html(dashboard_url));
    let html = format!(
        "<p>Hello {company_html},</p>\
         <p>Your credit balance is <strong>{balance} credits</strong>, below the threshold of \
         {threshold} credits.</p>\
         <p>Top up to keep provisioning services for your clients: \
         <a href=\"{url_html}\">{url_html}</a></p>"
    );
    Some(MailMessage {
        to,
        subject,
        text,
        html,
        kind: LOW_CREDIT.to_owned(),
        idempotency_key: crossing.key(),
    })
}

/// Escapes text for HTML element content and attribute values.
#[must_use]
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The kind of the health alert mail.
pub const HEALTH_ALERT: &str = "healthAlert";

/// The account manager's mail for a partner that fell into a worse health band, or `None`
/// without an address. `key` is the alert's id.
#[must_use]
pub fn health_alert_mail(
    reseller: &Reseller,
    to: Option<&str>,
    key: &str,
    from_band: &str,
    band: &str,
    score: &str,
    dashboard_url: &str,
) -> Option<MailMessage> {
    let to = to?.to_owned();
    let company = &reseller.company_name;
    let subject = format!("{company}: partner health fell to {band} ({score})");
    let text = format!(
        "{company} ({refid}) moved from {from_band} to {band}, with a health score of {score}.\n\
         Review the partner and open an intervention:\n{dashboard_url}\n",
        refid = reseller.refid
    );
    let html = format!(
        "<p><strong>{company_html}</strong> ({refid}) moved from {from_band} to \
         <strong>{band}</strong>, with a health score of {score}.</p>\
         <p>Review the partner and open an intervention: <a href=\"{url}\">{url}</a></p>",
        company_html = escape_html(company),
        refid = escape_html(&reseller.refid),
        url = escape_html(dashboard_url),
    );
    Some(MailMessage {
        to,
        subject,
        text,
        html,
        kind: HEALTH_ALERT.to_owned(),
        idempotency_key: key.to_owned(),
    })
}
