'use strict';
// Run `size` setImmediate callbacks, 10,000 scheduled at a time: the twin of
// bench_runtime.py's "callbacks" workload (loop.call_soon).
const { parseArgs, timeWorkload } = require('./common.js');

const BATCH = 10000;

function runBatch(count) {
  return new Promise((resolve) => {
    let left = count;
    const callback = () => {
      left -= 1;
      if (left === 0) resolve();
    };
    for (let i = 0; i < count; i++) setImmediate(callback);
  });
}

async function runImmediates(count) {
  for (let done = 0; done < count; done += BATCH) {
    await runBatch(Math.min(BATCH, count - done));
  }
}

const { size } = parseArgs(1000000);
timeWorkload(runImmediates, size);
