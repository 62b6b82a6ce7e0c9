// SPDX-License-Identifier: BSD-3-Clause
// The Node client hot-shots (installed from npm by statsd_clients.sh into a temp
// dir, NODE_PATH) sends every type it has to 127.0.0.1:PORT: counters (with a
// sample rate), gauges and gauge deltas, timings, histograms, distributions and
// sets, each with global and per-call tags.
const StatsD = require('hot-shots');
const port = Number(process.argv[2]);
const c = new StatsD({ host: '127.0.0.1', port, protocol: 'udp', globalTags: { lib: 'node' },
  maxBufferSize: 0 });
let i = 0;
function burst() {
  for (const end = i + 50; i < end && i < 400; i++) {
    c.increment('node.hits', 1, ['route:/b']);
    c.increment('node.sampled', 2, 0.5);
    c.gauge('node.temp', 20 + (i % 5), ['room:c']);
    if (typeof c.gaugeDelta === 'function' && i % 100 === 0)
      c.gaugeDelta('node.temp2', i % 200 === 0 ? 3 : -1);
    c.timing('node.lat', 1 + ((i * 53) % 700), ['route:/b']);
    c.histogram('node.size', (i * 7919) % 10000 / 3);
    c.distribution('node.dist', Math.exp((i % 40) / 8), 0.25);
    c.set('node.users', 'n' + (i % 123), ['env:prod']);
  }
  if (i < 400)
    setTimeout(burst, 10); // UDP on loopback drops what a socket buffer cannot hold
  else
    c.close(() => {});
}
burst();
