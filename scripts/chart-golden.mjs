#!/usr/bin/env node
// npm run chart:golden: writes the chart's golden renders, test/fixtures/chart-renders/<case>.yaml
// (the cases: test/chart/golden-renders.cjs), and removes files of cases that no longer exist.
// test/chart/golden.test.ts fails whenever a render differs from its file. Run this only for an
// intended change of the rendered output, and read `git diff test/fixtures/chart-renders` before
// committing it: the diff is the change every user of the chart will get.
import fs from 'node:fs';
import path from 'node:path';
import golden from '../test/chart/golden-renders.cjs';

const renderer = golden.createRenderer();
try {
  fs.mkdirSync(golden.GOLDEN_DIR, { recursive: true });
  const cases = golden.cases();
  const keep = new Set(cases.map((c) => path.basename(golden.goldenFile(c.name))));
  for (const f of fs.readdirSync(golden.GOLDEN_DIR)) {
    if (!keep.has(f)) fs.rmSync(path.join(golden.GOLDEN_DIR, f));
  }
  for (const c of cases) {
    const file = golden.goldenFile(c.name);
    const text = renderer.render(c);
    const before = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : undefined;
    if (before !== text) fs.writeFileSync(file, text);
    process.stdout.write(`${before === undefined ? 'new      ' : before === text ? 'same     ' : 'changed  '}${path.relative(process.cwd(), file)}\n`);
  }
} finally {
  renderer.close();
}
