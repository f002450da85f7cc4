// Validates JSON texts against JSON schemas with ajv, for the e2e tests (ajv compiles validators with
// new Function, which the engine page's Content-Security-Policy forbids, so it runs here in node).
// stdin: [{schema, text}]; stdout: one entry per case, null when `text` parses and validates, else why not.
import Ajv from "ajv";

const cases = JSON.parse(await new Promise((resolve) => {
  let input = "";
  process.stdin.on("data", (data) => (input += data)).on("end", () => resolve(input));
}));
const ajv = new Ajv({ strict: false });
const verdicts = cases.map(({ schema, text }) => {
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return `not JSON: ${error.message}`;
  }
  const validate = ajv.compile(schema);
  return validate(value) ? null : ajv.errorsText(validate.errors);
});
process.stdout.write(JSON.stringify(verdicts));
