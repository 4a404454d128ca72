// Validates an AsyncAPI document with the AsyncAPI project's own parser
// (@asyncapi/parser): `node validate-asyncapi.mjs FILE`. Prints every diagnostic;
// exits 1 on any error, or on a warning unless it is one of the style hints below.
import { readFile } from "node:fs/promises";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const file = process.argv[2];
const { document, diagnostics } = await new Parser().parse(await readFile(file, "utf8"));
const serious = diagnostics.filter((d) => d.severity <= DiagnosticSeverity.Warning);
for (const d of diagnostics) {
  console.error(`${["error", "warning", "info", "hint"][d.severity]} ${d.code} at ${d.path.join(".")}: ${d.message}`);
}
if (!document || serious.length > 0) {
  console.error(`${file}: ${serious.length} errors or warnings`);
  process.exit(1);
}
console.error(`${file}: valid AsyncAPI ${document.version()}, ${document.channels().length} channels, ${document.messages().length} messages`);
