import type { AllyMailer } from "./ally_engine.js";

/** The subset of a nodemailer transporter the mailer uses. */
export interface MailTransporterLike {
  sendMail(mail: {
    from: string;
    to: string;
    subject: string;
    text: string;
    html: string;
    messageId: string;
    headers: Record<string, string>;
  }): Promise<unknown>;
}

export interface SmtpMailerOptions {
  /** The sender, e.g. `"Ally <noreply@example.com>"`. */
  from: string;
  /** Domain of the Message-ID derived from each message's idempotency key. */
  messageIdDomain?: string;
}

/**
 * The mail port over SMTP. `transport` is a nodemailer transporter, or the SMTP options
 * (`{ host, port, secure, auth }`) to create one with nodemailer (a peer dependency).
 */
export function smtpMailer(transport: MailTransporterLike | Record<string, unknown>, options: SmtpMailerOptions): AllyMailer & { transporter: MailTransporterLike };
