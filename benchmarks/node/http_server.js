'use strict';
// A minimal keep-alive HTTP server on 127.0.0.1 (an ephemeral port, printed
// as JSON on stdout) that answers every request with "ok", and GET /cpu with
// its CPU seconds so far; it exits when its stdin closes. The load comes from
// bench_runtime.py, the same client as for the Python server.
// Usage: node http_server.js <plain|init|all>
const http = require('node:http');
const { parseArgs } = require('./common.js');

parseArgs(1);

const server = http.createServer((request, response) => {
  if (request.url === '/cpu') {
    // The load generator asks before and after its timed load: CPU seconds so far.
    const { user, system } = process.cpuUsage();
    response.end(String((user + system) / 1e6));
    return;
  }
  response.setHeader('Content-Type', 'text/plain');
  response.end('ok');
});
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
