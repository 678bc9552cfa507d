#!/usr/bin/env node
/**
 * StatsD ingestion benchmark: how many DogStatsD lines per second can the sidecar ingest on one
 * core from multi-line UDP packets, how many does it lose, and how close is that to a null sink
 * that only receives the packets and counts their lines (the ceiling)? Run with
 * `npm run bench:statsd` (builds first).
 *
 * The sidecar (`node dist/main.js`, StatsD on 127.0.0.1) and the null sink (bench/lib/udp-sink.mjs)
 * both run on CPU 0; the sender (bench/lib/udp-sender.mjs: ~1,400-byte packets of a realistic mix,
 * ~25 lines each, ~260 distinct series) runs on CPU 1 and sends as fast as it can, N lines or at
 * most T seconds, to one receiver at a time (three interleaved rounds; medians are reported).
 * Receivers are polled every 100 ms (the sidecar's `metrics_sidecar_statsd_lines_total
 * {outcome="accepted"}` from its exposition, the sink's own count) to get the rate while the
 * sender is active; loss = 1 - received / sent once the receiver has drained. CPU time of the
 * receiver (/proc/<pid>/stat) gives the cost per line. Then the sidecar gets a paced run at the
 * target rate (loss at 500k lines/s), and a separate process measures the ingest code alone
 * (StatsdRecorder.handlePacket over the same packets, in-process, no sockets), with a CPU profile.
 *
 * Results: a table on stdout and bench/results/statsd.json. A missed target is not a failure.
 *
 * Environment knobs (optional): BENCH_STATSD_LINES (10000000 per run), BENCH_STATSD_SECONDS (10,
 * cap per run), BENCH_STATSD_ROUNDS (3), BENCH_STATSD_PACED_RATE (500000 lines/s),
 * BENCH_STATSD_PACED_SECONDS (4), BENCH_CPU_PROF=1 (run the sidecar under --cpu-prof: its profile is
 * summarised in the report and kept as bench/results/statsd-sidecar.cpuprofile; the sidecar's
 * numbers are then slightly lower), BENCH_KEEP_TMP=1.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { start, stop, stopAll, freePorts, waitForHttp, run, tail, cpuTicks, clockTicks, beginRun, runMain } from './lib/procs.mjs';

const SELF = fileURLToPath(import.meta.url);
const BENCH = path.dirname(SELF);

if (process.argv.includes('--ingest-worker')) {
  ingestWorker().catch((err) => {
    process.stderr.write(`ingest worker failed: ${err.stack ?? err}\n`);
    process.exit(1);
  });
} else {
  runMain('statsd', main);
}

// ---------------------------------------------------------------------------------------------
// In-process ingest cost: StatsdRecorder.handlePacket over pre-built packets, no sockets.

async function ingestWorker() {
  const { mixPackets } = await import('./lib/statsd.mjs');
  const { summariseProfile } = await import('./lib/cpuprofile.mjs');
  const inspector = await import('node:inspector');
  const { values: opts } = parseArgs({
    options: { 'ingest-worker': { type: 'boolean' }, seconds: { type: 'string', default: '3' }, profile: { type: 'string' } },
  });
  const require = createRequire(import.meta.url);
  const dist = path.join(BENCH, '..', 'dist');
  const { Registry } = require(path.join(dist, 'metrics', 'registry.js'));
  const { ExpositionWriter } = require(path.join(dist, 'exposition', 'render.js'));
  const { StatsdRecorder } = require(path.join(dist, 'ingest', 'statsd', 'recorder.js'));
  const { Mapper } = require(path.join(dist, 'ingest', 'statsd', 'mapper.js'));
  const registry = new Registry();
  const store = new StatsdRecorder(registry, new Mapper(undefined, [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]), {
    enableDbMetrics: true,
    maxSeriesPerFamily: 1e9,
  });
  const { packets, lines } = mixPackets(2000, 1400);
  const texts = packets.map((b) => b.toString('utf8'));

  /** Runs `fn(i)` over the packets in order for `ms`; returns lines/s. */
  const loop = (ms, fn) => {
    let n = 0;
    let i = 0;
    const t0 = performance.now();
    let t = t0;
    while (t - t0 < ms) {
      for (let k = 0; k < 100; k++) {
        fn(i);
        n += lines[i];
        i = i + 1 === packets.length ? 0 : i + 1;
      }
      t = performance.now();
    }
    return Math.round(n / ((t - t0) / 1000));
  };
  const seconds = Number(opts.seconds);
  loop(1000, (i) => store.handlePacket(texts[i])); // warm-up: series created, code optimised
  const parse = loop(seconds * 1000, (i) => store.handlePacket(texts[i]));
  const decode = loop(seconds * 1000, (i) => store.handlePacket(packets[i].toString('utf8')));

  let profile = null;
  if (opts.profile) {
    const session = new inspector.Session();
    session.connect();
    const post = (method, params) => new Promise((resolve, reject) => session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))));
    await post('Profiler.enable');
    await post('Profiler.setSamplingInterval', { interval: 100 });
    await post('Profiler.start');
    loop(2000, (i) => store.handlePacket(packets[i].toString('utf8')));
    const res = await post('Profiler.stop');
    fs.writeFileSync(opts.profile, JSON.stringify(res.profile));
    session.disconnect();
    profile = summariseProfile(opts.profile, { top: 12, root: path.resolve(BENCH, '..') });
  }
  const text = new ExpositionWriter(registry.all(), false, '').all().toString('utf8');
  const accepted = Number(/metrics_sidecar_statsd_lines_total\{outcome="accepted"\} (\S+)/.exec(text)?.[1]);
  const rejected = ['malformed', 'dropped', 'type_conflict'].reduce((a, o) => a + Number(new RegExp(`outcome="${o}"\\} (\\S+)`).exec(text)?.[1] ?? 0), 0);
  process.stdout.write(`${JSON.stringify({ lines_per_s_string: parse, lines_per_s_decode: decode, accepted, rejected, profile })}\n`);
}

// ---------------------------------------------------------------------------------------------
// Orchestrator.

async function main() {
  const R = await import('./lib/report.mjs');
  const { round, median } = await import('./lib/stats.mjs');
  const { MIX_DESCRIPTION, MIX_DISTINCT_SERIES, udpSnmp } = await import('./lib/statsd.mjs');
  const { startSidecar, statsdOutcomes, collectCpuProfile } = await import('./lib/sidecar.mjs');
  const { summariseProfile, formatProfile, sidecarProfileLines } = await import('./lib/cpuprofile.mjs');
  const { timedGet } = await import('./lib/http.mjs');

  const log = R.logger('statsd');
  const SETTINGS = {
    lines_per_run: R.envNum('BENCH_STATSD_LINES', 10_000_000),
    max_seconds_per_run: R.envNum('BENCH_STATSD_SECONDS', 10),
    rounds: R.envNum('BENCH_STATSD_ROUNDS', 3),
    paced_rate: R.envNum('BENCH_STATSD_PACED_RATE', 500_000),
    paced_seconds: R.envNum('BENCH_STATSD_PACED_SECONDS', 4),
    packet_max_bytes: 1400,
    distinct_packets: 2000,
    poll_interval_ms: 100,
    warmup_lines: 300_000,
    ingest_seconds: 3,
    cpu_prof: R.envBool('BENCH_CPU_PROF', false),
    receiver_cpu: 0,
    sender_cpu: 1,
    mix: MIX_DESCRIPTION,
    mix_distinct_series: MIX_DISTINCT_SERIES,
  };
  const TARGETS = { events_per_s_min: 500_000, sidecar_over_null_min: 0.7 };
  const OVERALL_TIMEOUT_MS = 5 * 60 * 1000;

  const startedAt = Date.now();
  const pre = R.preflight({ needFiles: ['dist/main.js', 'dist/ingest/statsd/recorder.js'], script: 'bench:statsd' });
  const { tmp, overall } = beginRun('bench-statsd', OVERALL_TIMEOUT_MS, log);
  const meta = R.baseMeta(pre);
  R.pinSelf(SETTINGS.sender_cpu);
  const hz = clockTicks();
  log(`node ${meta.versions.node}, ${meta.machine.nproc} CPUs; temp dir ${tmp}`);
  const warnings = [];

  const [metricsPort, statsdPort, sinkPort, sinkHttpPort] = await freePorts(4);
  const profDir = path.join(tmp, 'cpuprof');
  log(`sidecar: StatsD on 127.0.0.1:${statsdPort}, metrics :${metricsPort} (CPU ${SETTINGS.receiver_cpu})${SETTINGS.cpu_prof ? ', under --cpu-prof' : ''}`);
  const sidecar = await startSidecar({
    cpus: SETTINGS.receiver_cpu,
    ports: { listen: 0, metrics: metricsPort, statsd: statsdPort },
    nodeArgs: SETTINGS.cpu_prof ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [],
    tmp,
  });
  log(`null sink: UDP 127.0.0.1:${sinkPort}, counts on :${sinkHttpPort} (CPU ${SETTINGS.receiver_cpu})`);
  const sink = start(
    'null-sink',
    process.execPath,
    [path.join(BENCH, 'lib', 'udp-sink.mjs'), '--port', String(sinkPort), '--http-port', String(sinkHttpPort)],
    {
      cpus: SETTINGS.receiver_cpu,
    },
  );
  await waitForHttp(`http://127.0.0.1:${sinkHttpPort}/count`, sink, 10000);

  const receivers = {
    sidecar: {
      name: 'sidecar',
      port: statsdPort,
      pid: sidecar.pid,
      alive: () => sidecar.alive(),
      count: async () => (await statsdOutcomes(sidecar.metricsUrl)).accepted,
    },
    null_sink: {
      name: 'null sink',
      port: sinkPort,
      pid: sink.pid,
      alive: () => {
        if (sink.done) throw new Error(`null sink ended (${sink.exitInfo}):\n${tail(sink.output())}`);
      },
      count: async () => JSON.parse((await timedGet(`http://127.0.0.1:${sinkHttpPort}/count`, { keepBody: true })).body).lines,
    },
  };

  async function send(port, { lines, seconds, rate }) {
    const args = [
      path.join(BENCH, 'lib', 'udp-sender.mjs'),
      '--port',
      String(port),
      '--lines',
      String(lines),
      '--seconds',
      String(seconds),
      '--max-bytes',
      String(SETTINGS.packet_max_bytes),
      '--distinct',
      String(SETTINGS.distinct_packets),
    ];
    if (rate) args.push('--rate', String(rate));
    const res = await run('udp-sender', process.execPath, args, { cpus: SETTINGS.sender_cpu, timeoutMs: (seconds + 30) * 1000 });
    if (res.code !== 0) throw new Error(`udp-sender exited ${res.code ?? res.signal}: ${res.stderr.trim()}`);
    return JSON.parse(res.stdout.trim().split('\n').pop());
  }

  /**
   * One measured run against `rx`: polls its count every poll_interval_ms while the sender runs
   * and until the count has been still for 3 polls (drained).
   */
  async function measure(rx, opts) {
    rx.alive();
    const epoch = () => performance.timeOrigin + performance.now();
    const c0 = await rx.count();
    const snmp0 = udpSnmp();
    const ticks0 = cpuTicks([rx.pid]);
    const polls = [];
    let sending = true;
    let stopPolling = false;
    const poller = (async () => {
      let still = 0;
      let last = c0;
      while (!stopPolling) {
        await sleep(SETTINGS.poll_interval_ms);
        const c = await rx.count();
        polls.push({ t: epoch(), c: c - c0 });
        if (!sending) {
          still = c === last ? still + 1 : 0;
          if (still >= 3) break;
        }
        last = c;
      }
    })();
    let sender;
    try {
      sender = await send(rx.port, opts);
    } finally {
      sending = false;
    }
    const drainDeadline = setTimeout(() => (stopPolling = true), 15000);
    await poller;
    clearTimeout(drainDeadline);
    const ticks1 = cpuTicks([rx.pid]);
    const snmp1 = udpSnmp();
    rx.alive();

    const received = polls.length ? polls[polls.length - 1].c : 0;
    // While sending: from the first poll ≥ 200 ms after the sender started (its ramp-up) to the
    // last poll before it stopped.
    const during = polls.filter((p) => p.t >= sender.start_ms + 200 && p.t <= sender.end_ms);
    let ratePerS = null;
    if (during.length >= 2) {
      const a = during[0];
      const b = during[during.length - 1];
      ratePerS = ((b.c - a.c) / (b.t - a.t)) * 1000;
    }
    const doneAt = polls.find((p) => p.c === received)?.t ?? sender.end_ms;
    const cpuS = (ticks1 - ticks0) / hz;
    return {
      sent_lines: sender.lines,
      sent_packets: sender.packets,
      sender_lines_per_s: sender.lines_per_s,
      send_ms: round(sender.ms, 1),
      received_lines: received,
      loss_pct: round(100 * (1 - received / sender.lines), 2),
      lines_per_s_while_sending: ratePerS === null ? null : Math.round(ratePerS),
      lines_per_s_overall: Math.round(received / ((doneAt - sender.start_ms) / 1000)),
      cpu_s: round(cpuS, 2),
      cpu_us_per_line: received ? round((cpuS * 1e6) / received, 3) : null,
      kernel_rcvbuf_errors: snmp0 && snmp1 ? snmp1.RcvbufErrors - snmp0.RcvbufErrors : null,
      polls: polls.length,
    };
  }

  // Warm-up: the mix's series get created and the code gets optimised in both receivers.
  for (const rx of Object.values(receivers)) {
    log(`${rx.name}: warm-up, ${SETTINGS.warmup_lines.toLocaleString('en-US')} lines at 300k lines/s`);
    await send(rx.port, { lines: SETTINGS.warmup_lines, seconds: 10, rate: 300_000 });
  }
  await sleep(500);

  const runs = { sidecar: [], null_sink: [] };
  const order = Object.keys(receivers);
  for (let r = 0; r < SETTINGS.rounds; r++) {
    for (let k = 0; k < order.length; k++) {
      const key = order[(k + r) % order.length];
      log(
        `${receivers[key].name}: max rate, ${SETTINGS.lines_per_run.toLocaleString('en-US')} lines or ${SETTINGS.max_seconds_per_run}s (round ${r + 1}/${SETTINGS.rounds})`,
      );
      const m = await measure(receivers[key], { lines: SETTINGS.lines_per_run, seconds: SETTINGS.max_seconds_per_run });
      log(
        `  received ${m.received_lines.toLocaleString('en-US')}/${m.sent_lines.toLocaleString('en-US')}, ${m.lines_per_s_while_sending?.toLocaleString('en-US')} lines/s while sending`,
      );
      runs[key].push(m);
    }
  }
  const pacedLines = Math.round(SETTINGS.paced_rate * SETTINGS.paced_seconds);
  log(`sidecar: paced at ${SETTINGS.paced_rate.toLocaleString('en-US')} lines/s for ${SETTINGS.paced_seconds}s`);
  const paced = await measure(receivers.sidecar, { lines: pacedLines, seconds: SETTINGS.paced_seconds + 5, rate: SETTINGS.paced_rate });

  const outcomes = await statsdOutcomes(sidecar.metricsUrl);
  if (outcomes.malformed || outcomes.dropped || outcomes.type_conflict)
    warnings.push(`sidecar counted lines that were not accepted: ${JSON.stringify(outcomes)}`);

  const exit = await sidecar.stop();
  const logSummary = sidecar.logSummary();
  if (exit.code !== 0) warnings.push(`sidecar exited with ${exit.code ?? exit.signal} on SIGTERM`);
  for (const [k, n] of Object.entries(logSummary.counts)) warnings.push(`sidecar logged ${n}x "${k}"`);
  await stop(sink, { signal: 'SIGTERM', graceMs: 3000 });

  let sidecarProfile = null;
  if (SETTINGS.cpu_prof) {
    const kept = collectCpuProfile(profDir, path.join(R.RESULTS_DIR, 'statsd-sidecar.cpuprofile'));
    if (kept) sidecarProfile = { file: path.relative(process.cwd(), kept), ...summariseProfile(kept, { top: 15, root: R.ROOT }) };
    else warnings.push('BENCH_CPU_PROF=1 but the sidecar wrote no .cpuprofile');
  }

  log(`in-process ingest: StatsdRecorder.handlePacket over the same packets (CPU ${SETTINGS.receiver_cpu}), ${SETTINGS.ingest_seconds}s each + a 2s profile`);
  const ingestProfileFile = path.join(R.RESULTS_DIR, 'statsd-ingest.cpuprofile');
  fs.mkdirSync(R.RESULTS_DIR, { recursive: true });
  const ing = await run('ingest', process.execPath, [SELF, '--ingest-worker', '--seconds', String(SETTINGS.ingest_seconds), '--profile', ingestProfileFile], {
    cpus: SETTINGS.receiver_cpu,
    timeoutMs: 60000,
  });
  if (ing.code !== 0) throw new Error(`ingest worker exited ${ing.code ?? ing.signal}: ${ing.stderr.trim()}`);
  const ingest = JSON.parse(ing.stdout.trim().split('\n').pop());
  if (ingest.rejected) warnings.push(`in-process ingest: ${ingest.rejected} lines were not accepted`);
  ingest.profile_file = path.relative(process.cwd(), ingestProfileFile);

  // ---- summary
  const summary = (rs) => ({
    sent_lines: median(rs.map((x) => x.sent_lines)),
    received_lines: median(rs.map((x) => x.received_lines)),
    loss_pct: median(rs.map((x) => x.loss_pct)),
    lines_per_s_while_sending: median(rs.map((x) => x.lines_per_s_while_sending)),
    lines_per_s_overall: median(rs.map((x) => x.lines_per_s_overall)),
    cpu_us_per_line: median(rs.map((x) => x.cpu_us_per_line)),
    sender_lines_per_s: median(rs.map((x) => x.sender_lines_per_s)),
  });
  const S = summary(runs.sidecar);
  const N = summary(runs.null_sink);
  const ratios = {
    sidecar_over_null_events_per_s: round(S.lines_per_s_while_sending / N.lines_per_s_while_sending, 3),
    sidecar_over_null_cpu_per_line: round(S.cpu_us_per_line / N.cpu_us_per_line, 2),
    in_process_over_sidecar: round(ingest.lines_per_s_decode / S.lines_per_s_while_sending, 2),
  };
  const verdicts = {
    sidecar_events_per_s: R.atLeast(S.lines_per_s_while_sending, TARGETS.events_per_s_min),
    sidecar_over_null_events_per_s: R.atLeast(ratios.sidecar_over_null_events_per_s, TARGETS.sidecar_over_null_min),
  };
  if (N.loss_pct < 1) {
    warnings.push(
      `the null sink lost ${N.loss_pct}% of the lines: it kept up with the sender (${R.fmtInt(N.sender_lines_per_s)} lines/s from one core), ` +
        'so the ceiling is at least its rate, and sidecar/null is an upper bound of the true ratio',
    );
  }

  const out = [''];
  out.push(
    `StatsD benchmark: receivers on CPU ${SETTINGS.receiver_cpu}, sender on CPU ${SETTINGS.sender_cpu}; ${R.fmtInt(SETTINGS.lines_per_run)} lines per run ` +
      `(≤ ${SETTINGS.max_seconds_per_run}s) in ~${SETTINGS.packet_max_bytes}-byte packets at the sender's maximum rate; median of ${SETTINGS.rounds} rounds`,
  );
  out.push(`mix: ${SETTINGS.mix}`);
  out.push('');
  const head = ['receiver', 'sent', 'received', 'loss %', 'lines/s (sending)', 'lines/s (overall)', 'CPU µs/line', 'sender lines/s'];
  const row = (name, s) => [
    name,
    R.fmtInt(s.sent_lines),
    R.fmtInt(s.received_lines),
    R.fmt(s.loss_pct, 1),
    R.fmtInt(s.lines_per_s_while_sending),
    R.fmtInt(s.lines_per_s_overall),
    R.fmt(s.cpu_us_per_line, 3),
    R.fmtInt(s.sender_lines_per_s),
  ];
  out.push(
    R.table(head, [
      row('sidecar, max rate', S),
      row('null sink, max rate', N),
      row(`sidecar, paced ${R.fmtInt(SETTINGS.paced_rate)}/s`, paced),
      ['in-process handlePacket(string)', '', '', '', R.fmtInt(ingest.lines_per_s_string), '', R.fmt(1e6 / ingest.lines_per_s_string, 3), ''],
      ['in-process decode + handlePacket', '', '', '', R.fmtInt(ingest.lines_per_s_decode), '', R.fmt(1e6 / ingest.lines_per_s_decode, 3), ''],
    ]),
  );
  out.push('');
  out.push(
    `lines/s while sending by round: sidecar [${runs.sidecar.map((x) => R.fmtInt(x.lines_per_s_while_sending)).join(' ')}]  null sink [${runs.null_sink.map((x) => R.fmtInt(x.lines_per_s_while_sending)).join(' ')}]`,
  );
  out.push(
    `kernel receive-buffer drops (RcvbufErrors, datagrams) by round: sidecar [${runs.sidecar.map((x) => x.kernel_rcvbuf_errors ?? '-').join(' ')}]  null sink [${runs.null_sink.map((x) => x.kernel_rcvbuf_errors ?? '-').join(' ')}]`,
  );
  out.push('');
  out.push(
    R.targetLine(
      'sidecar lines/s (one core):',
      R.fmtInt(S.lines_per_s_while_sending),
      `target >= ${R.fmtInt(TARGETS.events_per_s_min)}`,
      verdicts.sidecar_events_per_s,
    ),
  );
  out.push(
    R.targetLine(
      'sidecar / null sink, lines/s:',
      R.fmt(ratios.sidecar_over_null_events_per_s, 2),
      `target >= ${TARGETS.sidecar_over_null_min}`,
      verdicts.sidecar_over_null_events_per_s,
    ),
  );
  out.push(R.targetLine('sidecar / null sink, CPU per line:', `${R.fmt(ratios.sidecar_over_null_cpu_per_line, 1)}x`));
  out.push(R.targetLine(`sidecar loss at ${R.fmtInt(SETTINGS.paced_rate)} lines/s (paced):`, `${R.fmt(paced.loss_pct, 2)} %`));
  out.push(R.targetLine('in-process ingest / sidecar over UDP:', `${R.fmt(ratios.in_process_over_sidecar, 2)}x`));
  if (ingest.profile) {
    out.push('');
    out.push(`in-process ingest profile (decode + handlePacket, ${ingest.profile.samples} samples; ${ingest.profile_file}):`);
    out.push(formatProfile(ingest.profile, 8));
  }
  if (sidecarProfile) out.push(...sidecarProfileLines(sidecarProfile));
  out.push(...R.warningLines(warnings));

  const elapsed = round((Date.now() - startedAt) / 1000, 1);
  const file = R.writeResults('statsd', {
    ...meta,
    elapsed_s: elapsed,
    settings: SETTINGS,
    results: { sidecar: S, null_sink: N, sidecar_paced: paced, in_process: ingest },
    runs,
    sidecar_outcomes: outcomes,
    sidecar_profile: sidecarProfile,
    ratios,
    targets: TARGETS,
    verdicts,
    sidecar_log: logSummary.counts,
    warnings,
  });
  out.push('');
  out.push(`results: ${file} (${elapsed}s)`);
  process.stdout.write(`${out.join('\n')}\n`);
  await stopAll();
  clearTimeout(overall);
  return 0;
}
