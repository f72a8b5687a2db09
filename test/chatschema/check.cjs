// Checks chat messages against what Slack and Microsoft publish about them.
//   node check.cjs slack FILE   Block Kit messages, typed with @slack/types and checked
//                               by the TypeScript compiler (strict, no excess properties)
//   node check.cjs teams FILE   Teams workflow messages whose Adaptive Card is parsed and
//                               validated by the Adaptive Cards library
// FILE is a JSON array of messages. Prints one problem per line, "N: problem" for the
// N-th message; prints nothing when every message passes.
"use strict";
const fs = require("fs");
const path = require("path");

const [kind, file] = process.argv.slice(2);
const messages = JSON.parse(fs.readFileSync(file, "utf8"));
const problems = [];

if (kind === "slack") {
  const ts = require("typescript");
  const lines = ['import type { KnownBlock } from "@slack/types";',
    "type SlackMessage = { text: string; blocks: KnownBlock[] };"];
  const first = lines.length;
  messages.forEach((m, i) => lines.push(`export const m${i}: SlackMessage = ${JSON.stringify(m)};`));
  const source = path.join(path.dirname(file), "slack-messages.ts");
  fs.writeFileSync(source, lines.join("\n"));
  const program = ts.createProgram([source], { strict: true, noEmit: true, module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10, typeRoots: [], types: [], baseUrl: __dirname,
    paths: { "@slack/types": [path.join(__dirname, "node_modules/@slack/types")] } });
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const text = ts.flattenDiagnosticMessageText(d.messageText, " ");
    const line = d.file ? d.file.getLineAndCharacterOfPosition(d.start).line : first - 1;
    problems.push(`${line - first}: ${text}`);
  }
} else if (kind === "teams") {
  const AC = require("adaptivecards/dist/adaptivecards.js");
  messages.forEach((m, i) => {
    if (m.type !== "message" || !Array.isArray(m.attachments) || m.attachments.length !== 1) {
      problems.push(`${i}: a workflow message has type "message" and one attachment`);
      return;
    }
    const a = m.attachments[0];
    if (a.contentType !== "application/vnd.microsoft.card.adaptive" || typeof a.content !== "object") {
      problems.push(`${i}: the attachment is not an Adaptive Card`);
      return;
    }
    const card = new AC.AdaptiveCard();
    const context = new AC.SerializationContext();
    card.parse(a.content, context);
    for (let e = 0; e < context.eventCount; e++) problems.push(`${i}: ${context.getEventAt(e).message}`);
    for (const e of card.validateProperties().validationEvents) problems.push(`${i}: ${e.message}`);
  });
} else {
  problems.push(`unknown kind ${kind}`);
}
for (const p of problems) console.log(p);
