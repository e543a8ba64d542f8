"use strict";
// An SMTP mailer for Node on nodemailer: the mail port of `AllyMailer`.
//
// Each message carries its idempotency key twice: in an `X-Ally-Idempotency-Key` header and as
// the Message-ID (derived from the key), so a receiving system can drop a duplicate delivery.

const { createHash } = require("node:crypto");
const { AllyError } = require("./ally_engine.cjs");

function smtpMailer(transport, options) {
  const from = options?.from;
  if (typeof from !== "string" || from.trim() === "") {
    throw AllyError.invalidConfig("from", "expected the sender address, e.g. \"Ally <noreply@example.com>\"");
  }
  let transporter = transport;
  if (!transporter || typeof transporter.sendMail !== "function") {
    // SMTP options (host, port, auth, …): build the nodemailer transport here.
    const nodemailer = require("nodemailer");
    transporter = nodemailer.createTransport(transport);
  }
  const domain = options?.messageIdDomain ?? "ally-engine.invalid";
  return {
    transporter,
    async send(message) {
      const digest = createHash("sha256").update(message.idempotencyKey).digest("hex").slice(0, 32);
      await transporter.sendMail({
        from,
        to: message.to,
        subject: message.subject,
        text: message.text,
        html: message.html,
        messageId: `<${digest}@${domain}>`,
        headers: { "X-Ally-Idempotency-Key": message.idempotencyKey, "X-Ally-Kind": message.kind },
      });
    },
  };
}

module.exports = { smtpMailer };
