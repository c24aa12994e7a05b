'use strict';
// Create and await `size` async function calls (promises), 1,000 at a time:
// the twin of bench_runtime.py's "tasks" workload (asyncio tasks).
const { parseArgs, timeWorkload } = require('./common.js');

const BATCH = 1000;

async function leaf() {
  await null; // one turn of the microtask queue, as asyncio.sleep(0) is one loop turn
}

async function createAndAwait(count) {
  for (let done = 0; done < count; done += BATCH) {
    const pending = [];
    for (let i = 0; i < Math.min(BATCH, count - done); i++) pending.push(leaf());
    for (const promise of pending) await promise;
  }
}

const { size } = parseArgs(100000);
timeWorkload(createAndAwait, size);
