// A real SMTP listener on loopback for the tests: it keeps each message it accepts
// (`received`: `{ to, raw }`), and refuses the next `refuse(n)` messages with a 451, as a
// relay that is briefly unavailable does.
import { SMTPServer } from "smtp-server";

export async function startSmtp() {
  const received = [];
  let refusing = 0;
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    logger: false,
    onData(stream, session, callback) {
      const chunks = [];
      stream.on("data", (c) => chunks.push(c));
      stream.on("end", () => {
        if (refusing > 0) {
          refusing -= 1;
          const error = new Error("mailbox temporarily unavailable");
          error.responseCode = 451;
          return callback(error);
        }
        received.push({ to: session.envelope.rcptTo.map((r) => r.address), raw: Buffer.concat(chunks).toString("utf8") });
        callback();
      });
    },
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: server.server.address().port,
    received,
    refuse(n) {
      refusing = n;
    },
    close: () => server.close(),
  };
}
