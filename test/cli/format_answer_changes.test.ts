// What `make demo` prints after its DPO act: the held-out answers the stage fixed and broke.
import { test } from "node:test";
import assert from "node:assert/strict";
import { formatAnswerChanges, type EvalAnswer } from "../../cli/format_answer_changes.js";

const ask = (q: string, expected: string, answer: string): EvalAnswer => ({
  messages: [
    { role: "system", content: "Answer with JSON only." },
    { role: "user", content: q },
  ],
  expected,
  answer,
});

const before = [
  ask("Order 9916 ...", '{"order":9916}', '{"order":9991}'),
  ask("Helen Kim ...", '{"name":"Helen Kim"}', '{"name":"Helen Kim"}'),
  ask("Order 8391 ...", '{"order":8391}', '{"order":8321}'),
  ask("Ana Silva ...", '{"name":"Ana Silva"}', '{ "name": "Ana Silva" }'),
];
const after = [
  ask("Order 9916 ...", '{"order":9916}', '{"order": 9916}'),
  ask("Helen Kim ...", '{"name":"Helen Kim"}', 'Sure! {"name":"Helen Kim"}'),
  ask("Order 8391 ...", '{"order":8391}', '{"order":8392}'),
  ask("Ana Silva ...", '{"name":"Ana Silva"}', '{"name":"Ana Silva"}'),
];

test("the answers a stage changed: now right and now wrong, judged as the eval's exact match", () => {
  const text = formatAnswerChanges(before, after);
  assert.equal(
    text,
    [
      "held-out answers this stage changed: 1 now right, 1 now wrong (of 4)",
      "now right:",
      "  Order 9916 ...",
      '    before: {"order":9991}',
      '    after:  {"order": 9916}',
      "now wrong:",
      "  Helen Kim ...",
      '    before: {"name":"Helen Kim"}',
      '    after:  Sure! {"name":"Helen Kim"}',
      '    expected: {"name":"Helen Kim"}',
    ].join("\n"),
  );
});

test("answers of different prompts are refused, and long lists are cut", () => {
  assert.throws(() => formatAnswerChanges(before, after.slice(1)), /4 and 3 answers/);
  const swapped = [after[1]!, after[0]!, ...after.slice(2)];
  assert.throws(() => formatAnswerChanges(before, swapped), /line 1: the two evals asked different prompts/);
  const many = Array.from({ length: 8 }, (_, i) => ask(`q${i}`, "{}", "x"));
  const right = many.map((a) => ({ ...a, answer: "{}" }));
  const text = formatAnswerChanges(many, right, 3);
  assert.match(text, /8 now right, 0 now wrong \(of 8\)/);
  assert.match(text, /\.\.\. and 5 more$/);
  assert.doesNotMatch(text, /now wrong:/);
});
