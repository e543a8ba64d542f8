// ESM entry of the SMTP mailer (Node only); the implementation is shared with require().
import adapter from "./smtp.cjs";

export const { smtpMailer } = adapter;
