'use strict';
// Shared by the Node workloads of benchmarks/bench_runtime.py: turns on the
// hooks a run asks for, so that every workload is timed in the same modes as
// its Python twin. Usage: node <workload>.js <plain|init|all> [size]

const { createHook } = require('node:async_hooks');

const MODES = ['plain', 'init', 'all'];

function noop() {}

function enableHooks(mode) {
  if (!MODES.includes(mode)) {
    throw new Error(`unknown mode ${JSON.stringify(mode)}; expected one of ${MODES.join(', ')}`);
  }
  if (mode === 'init') {
    createHook({ init: noop }).enable();
  } else if (mode === 'all') {
    createHook({ init: noop, before: noop, after: noop, destroy: noop }).enable();
  }
}

function parseArgs(defaultSize) {
  const mode = process.argv[2] || 'plain';
  const size = process.argv[3] ? Number(process.argv[3]) : defaultSize;
  if (!Number.isInteger(size) || size <= 0) {
    throw new Error(`size must be a positive integer, got ${process.argv[3]}`);
  }
  enableHooks(mode);
  return { mode, size };
}

// Runs `workload(size)` once small to warm the JIT up, then prints the median
// CPU seconds (user + system) of three timed runs, as the Python worker does.
async function timeWorkload(workload, size) {
  await workload(Math.max(1, Math.floor(size / 5)));
  const timings = [];
  for (let i = 0; i < 3; i++) {
    const start = process.cpuUsage();
    await workload(size);
    const used = process.cpuUsage(start);
    timings.push((used.user + used.system) / 1e6);
  }
  timings.sort((a, b) => a - b);
  process.stdout.write(JSON.stringify({ seconds: timings[1] }) + '\n');
}

module.exports = { parseArgs, timeWorkload };
