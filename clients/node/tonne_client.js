#!/usr/bin/env node
// tonne trading client in Node.js, written from gateway/wire/PROTOCOL.md alone.
// Standard library only (net, crypto). Includes a minimal msgpack codec and, when the
// runtime has a global WebSocket (Node 22+, or Node 20/21 with --experimental-websocket),
// a JSON-over-WebSocket check.
'use strict';
const net = require('net');
const crypto = require('crypto');
const fs = require('fs');

// ---------------------------------------------------------------- msgpack
// Integers outside the JS safe range decode to BigInt (timestamps are ~1.7e18 ns);
// BigInt values encode as 64-bit ints. Floats decode (logon_ack sends seconds as floats);
// a non-integer Number encodes as float64.
function mpEncode(v) {
  const parts = [];
  const push = (b) => parts.push(b);
  const u8 = (...xs) => push(Buffer.from(xs));
  function int(n) { // n: BigInt
    if (n >= 0n) {
      if (n < 128n) return u8(Number(n));
      if (n < 256n) return u8(0xcc, Number(n));
      if (n < 65536n) { const b = Buffer.alloc(3); b[0] = 0xcd; b.writeUInt16BE(Number(n), 1); return push(b); }
      if (n < 4294967296n) { const b = Buffer.alloc(5); b[0] = 0xce; b.writeUInt32BE(Number(n), 1); return push(b); }
      if (n < 18446744073709551616n) { const b = Buffer.alloc(9); b[0] = 0xcf; b.writeBigUInt64BE(n, 1); return push(b); }
      throw new RangeError('integer too large for msgpack');
    }
    if (n >= -32n) return u8(Number(n) & 0xff);
    if (n >= -128n) { const b = Buffer.alloc(2); b[0] = 0xd0; b.writeInt8(Number(n), 1); return push(b); }
    if (n >= -32768n) { const b = Buffer.alloc(3); b[0] = 0xd1; b.writeInt16BE(Number(n), 1); return push(b); }
    if (n >= -2147483648n) { const b = Buffer.alloc(5); b[0] = 0xd2; b.writeInt32BE(Number(n), 1); return push(b); }
    if (n >= -9223372036854775808n) { const b = Buffer.alloc(9); b[0] = 0xd3; b.writeBigInt64BE(n, 1); return push(b); }
    throw new RangeError('integer too small for msgpack');
  }
  function enc(x) {
    if (x === null || x === undefined) return u8(0xc0);
    if (x === false) return u8(0xc2);
    if (x === true) return u8(0xc3);
    if (typeof x === 'bigint') return int(x);
    if (typeof x === 'number') {
      if (Number.isInteger(x)) {
        if (!Number.isSafeInteger(x)) throw new RangeError('unsafe integer ' + x + ': pass a BigInt');
        return int(BigInt(x));
      }
      const b = Buffer.alloc(9); b[0] = 0xcb; b.writeDoubleBE(x, 1); return push(b);
    }
    if (typeof x === 'string') {
      const s = Buffer.from(x, 'utf8'), n = s.length;
      if (n < 32) u8(0xa0 | n);
      else if (n < 256) u8(0xd9, n);
      else if (n < 65536) { const b = Buffer.alloc(3); b[0] = 0xda; b.writeUInt16BE(n, 1); push(b); }
      else { const b = Buffer.alloc(5); b[0] = 0xdb; b.writeUInt32BE(n, 1); push(b); }
      return push(s);
    }
    if (Buffer.isBuffer(x) || x instanceof Uint8Array) {
      const n = x.length;
      if (n < 256) u8(0xc4, n);
      else if (n < 65536) { const b = Buffer.alloc(3); b[0] = 0xc5; b.writeUInt16BE(n, 1); push(b); }
      else { const b = Buffer.alloc(5); b[0] = 0xc6; b.writeUInt32BE(n, 1); push(b); }
      return push(Buffer.from(x));
    }
    if (Array.isArray(x)) {
      const n = x.length;
      if (n < 16) u8(0x90 | n);
      else if (n < 65536) { const b = Buffer.alloc(3); b[0] = 0xdc; b.writeUInt16BE(n, 1); push(b); }
      else { const b = Buffer.alloc(5); b[0] = 0xdd; b.writeUInt32BE(n, 1); push(b); }
      for (const e of x) enc(e);
      return;
    }
    if (typeof x === 'object') {
      const keys = Object.keys(x).filter((k) => x[k] !== undefined), n = keys.length;
      if (n < 16) u8(0x80 | n);
      else if (n < 65536) { const b = Buffer.alloc(3); b[0] = 0xde; b.writeUInt16BE(n, 1); push(b); }
      else { const b = Buffer.alloc(5); b[0] = 0xdf; b.writeUInt32BE(n, 1); push(b); }
      for (const k of keys) { enc(k); enc(x[k]); }
      return;
    }
    throw new TypeError('cannot msgpack-encode ' + typeof x);
  }
  enc(v);
  return Buffer.concat(parts);
}

function mpDecode(buf) {
  let i = 0;
  const need = (n) => { if (i + n > buf.length) throw new RangeError('msgpack: truncated'); };
  const big = (b) => (b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b);
  function str(n) { need(n); const s = buf.toString('utf8', i, i + n); i += n; return s; }
  function bin(n) { need(n); const s = Buffer.from(buf.subarray(i, i + n)); i += n; return s; }
  function arr(n) { const a = new Array(n); for (let k = 0; k < n; k++) a[k] = dec(); return a; }
  function map(n) { const o = {}; for (let k = 0; k < n; k++) { const key = dec(); o[String(key)] = dec(); } return o; }
  function dec() {
    need(1);
    const t = buf[i++];
    if (t <= 0x7f) return t;
    if (t >= 0xe0) return t - 256;
    if ((t & 0xf0) === 0x80) return map(t & 0x0f);
    if ((t & 0xf0) === 0x90) return arr(t & 0x0f);
    if ((t & 0xe0) === 0xa0) return str(t & 0x1f);
    let v;
    switch (t) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: need(1); return bin(buf[i++]);
      case 0xc5: need(2); v = buf.readUInt16BE(i); i += 2; return bin(v);
      case 0xc6: need(4); v = buf.readUInt32BE(i); i += 4; return bin(v);
      case 0xca: need(4); v = buf.readFloatBE(i); i += 4; return v;
      case 0xcb: need(8); v = buf.readDoubleBE(i); i += 8; return v;
      case 0xcc: need(1); return buf[i++];
      case 0xcd: need(2); v = buf.readUInt16BE(i); i += 2; return v;
      case 0xce: need(4); v = buf.readUInt32BE(i); i += 4; return v;
      case 0xcf: need(8); v = buf.readBigUInt64BE(i); i += 8; return big(v);
      case 0xd0: need(1); v = buf.readInt8(i); i += 1; return v;
      case 0xd1: need(2); v = buf.readInt16BE(i); i += 2; return v;
      case 0xd2: need(4); v = buf.readInt32BE(i); i += 4; return v;
      case 0xd3: need(8); v = buf.readBigInt64BE(i); i += 8; return big(v);
      case 0xd9: need(1); return str(buf[i++]);
      case 0xda: need(2); v = buf.readUInt16BE(i); i += 2; return str(v);
      case 0xdb: need(4); v = buf.readUInt32BE(i); i += 4; return str(v);
      case 0xdc: need(2); v = buf.readUInt16BE(i); i += 2; return arr(v);
      case 0xdd: need(4); v = buf.readUInt32BE(i); i += 4; return arr(v);
      case 0xde: need(2); v = buf.readUInt16BE(i); i += 2; return map(v);
      case 0xdf: need(4); v = buf.readUInt32BE(i); i += 4; return map(v);
      default: throw new TypeError('msgpack: unsupported type byte 0x' + t.toString(16));
    }
  }
  const out = dec();
  if (i !== buf.length) throw new RangeError('msgpack: trailing bytes');
  return out;
}

// ---------------------------------------------------------------- JSON with big integers
// JSON.parse turns 1700000000000000123 into a lossy double; this parser keeps integers
// outside the safe range as BigInt. jsonStringify writes BigInt as bare digits.
function jsonParse(text) {
  let i = 0;
  const ws = () => { while (i < text.length && ' \t\r\n'.includes(text[i])) i++; };
  function val() {
    ws();
    const c = text[i];
    if (c === '{') {
      i++; const o = {}; ws();
      if (text[i] === '}') { i++; return o; }
      for (;;) { ws(); const k = val(); ws(); if (text[i++] !== ':') throw new SyntaxError('json: expected :');
        o[k] = val(); ws(); const d = text[i++]; if (d === '}') return o; if (d !== ',') throw new SyntaxError('json: expected ,'); }
    }
    if (c === '[') {
      i++; const a = []; ws();
      if (text[i] === ']') { i++; return a; }
      for (;;) { a.push(val()); ws(); const d = text[i++]; if (d === ']') return a; if (d !== ',') throw new SyntaxError('json: expected ,'); }
    }
    if (c === '"') {
      const m = /^"(?:[^"\\]|\\.)*"/s.exec(text.slice(i));
      if (!m) throw new SyntaxError('json: bad string');
      i += m[0].length; return JSON.parse(m[0]);
    }
    const m = /^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (m) {
      i += m[0].length;
      if (m[1] || m[2]) return Number(m[0]);
      const n = Number(m[0]);
      return Number.isSafeInteger(n) ? n : BigInt(m[0]);
    }
    for (const [w, v] of [['true', true], ['false', false], ['null', null]]) {
      if (text.startsWith(w, i)) { i += w.length; return v; }
    }
    throw new SyntaxError('json: unexpected ' + c + ' at ' + i);
  }
  const v = val(); ws();
  if (i !== text.length) throw new SyntaxError('json: trailing data');
  return v;
}
function jsonStringify(v) {
  const marks = [];
  const s = JSON.stringify(v, (k, x) => (typeof x === 'bigint' ? (marks.push(x.toString()), `@@BIG${marks.length - 1}@@`) : x));
  return s.replace(/"@@BIG(\d+)@@"/g, (_, n) => marks[Number(n)]);
}

// ---------------------------------------------------------------- printing and checks
const failures = [];
function check(cond, what) {
  if (cond) console.log(`  ok   ${what}`);
  else { console.log(`  FAIL ${what}`); failures.push(what); }
  return !!cond;
}
function show(v) { return jsonStringify(v); }
function logMsg(dir, conn, m) {
  const { type, ...rest } = m;
  console.log(`${conn.padEnd(4)} ${dir} ${String(type).padEnd(14)} ${show(rest)}`);
}
function eq(a, b) { return show(a) === show(b); }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- logon signature
function nowNs() { return BigInt(Date.now()) * 1000000n; }
function logonMessage(key, reqId, extra = {}) {
  const ts = nowNs();
  const nonce = crypto.randomBytes(16).toString('hex');
  const payload = Buffer.from(`${key.key_id}\n${ts.toString()}\n${nonce}`, 'utf8');
  const signature = crypto.createHmac('sha256', Buffer.from(key.secret, 'utf8')).update(payload).digest('hex');
  return { type: 'logon', key_id: key.key_id, ts, nonce, signature, req_id: reqId, ...extra };
}

// ---------------------------------------------------------------- L2 book with gap detection
class L2Book {
  constructor(series) { this.series = series; this.reset(); this.gaps = 0; this.applied = 0; this.ignored = 0; }
  reset() { this.seq = null; this.bids = new Map(); this.asks = new Map(); this.pending = []; }
  get ready() { return this.seq !== null; }
  snapshot(m) {
    this.reset();
    this.seq = m.seq;
    for (const [p, q] of m.bids) this.bids.set(p, q);
    for (const [p, q] of m.asks) this.asks.set(p, q);
  }
  // returns 'applied' | 'ignored' | 'gap' | 'buffered'
  update(m) {
    if (!this.ready) { this.pending.push(m); return 'buffered'; }
    if (m.seq <= this.seq) { this.ignored++; return 'ignored'; }
    if (m.seq !== this.seq + 1) { this.gaps++; this.reset(); return 'gap'; }
    const side = m.side === 'buy' ? this.bids : this.asks;
    if (m.qty === 0) side.delete(m.price); else side.set(m.price, m.qty);
    this.seq = m.seq; this.applied++;
    return 'applied';
  }
  levels() {
    const b = [...this.bids].sort((x, y) => y[0] - x[0]);
    const a = [...this.asks].sort((x, y) => x[0] - y[0]);
    return { bids: b, asks: a };
  }
  toString() {
    const { bids, asks } = this.levels();
    const f = (l) => l.map(([p, q]) => `${q}@${p}`).join(' ') || '-';
    return `${this.series} seq=${this.seq} bids[${f(bids)}] asks[${f(asks)}]`;
  }
}

// ---------------------------------------------------------------- a session (TCP or WS)
class Session {
  constructor(name) {
    this.name = name; this.inbox = []; this.waiters = []; this.closed = false; this.books = new Map();
    this.received = 0; this.lastHeartbeatSent = 0;
  }
  deliver(m) {
    this.received++;
    logMsg('<-', this.name, m);
    this.onMarketData(m);
    this.inbox.push(m);
    this.wake();
  }
  wake() {
    for (const w of [...this.waiters]) {
      const k = this.inbox.findIndex(w.pred);
      if (k >= 0) { const [m] = this.inbox.splice(k, 1); this.waiters.splice(this.waiters.indexOf(w), 1); clearTimeout(w.timer); w.resolve(m); }
      else if (this.closed) { this.waiters.splice(this.waiters.indexOf(w), 1); clearTimeout(w.timer); w.resolve(null); }
    }
  }
  // next message matching pred (taken out of the inbox), or null after timeoutMs
  next(pred, timeoutMs = 3000) {
    const k = this.inbox.findIndex(pred);
    if (k >= 0) return Promise.resolve(this.inbox.splice(k, 1)[0]);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      const w = { pred, resolve };
      w.timer = setTimeout(() => { this.waiters.splice(this.waiters.indexOf(w), 1); resolve(null); }, timeoutMs);
      this.waiters.push(w);
    });
  }
  async expect(pred, what, timeoutMs) {
    const m = await this.next(pred, timeoutMs);
    check(m !== null, `${this.name}: ${what}`);
    return m;
  }
  send(msgs) {
    for (const m of Array.isArray(msgs) ? msgs : [msgs]) logMsg('->', this.name, m);
    this.writeBatch(msgs);
  }
  // market data: keep an L2 book per subscribed series, in arrival order
  onMarketData(m) {
    if (m.type === 'book_snapshot') {
      const b = this.books.get(m.series) || new L2Book(m.series);
      this.books.set(m.series, b);
      const pending = b.pending;
      b.snapshot(m);
      for (const u of pending) b.update(u);
      console.log(`     book ${b}`);
    } else if (m.type === 'book_update') {
      const b = this.books.get(m.series);
      if (!b) { console.log(`     book update for unsubscribed ${m.series}`); return; }
      const r = b.update(m);
      if (r === 'gap') {
        console.log(`     GAP in ${m.series}: had seq ${m.seq - 1 > 0 ? '<' + (m.seq - 1) : '?'}, got ${m.seq}; resubscribing`);
        this.send({ type: 'subscribe', series: [m.series], req_id: 900 + b.gaps });
      } else console.log(`     book ${r}: ${b}`);
    }
  }
}

class TcpSession extends Session {
  connect(host, port) {
    return new Promise((resolve, reject) => {
      const sock = net.createConnection({ host, port }, resolve);
      this.sock = sock; this.closed = false;
      sock.once('error', reject);
      let acc = Buffer.alloc(0);
      sock.on('data', (d) => {
        acc = acc.length ? Buffer.concat([acc, d]) : d;
        while (acc.length >= 4) {
          const n = acc.readUInt32BE(0);
          if (acc.length < 4 + n) break;
          const frame = acc.subarray(4, 4 + n); acc = acc.subarray(4 + n);
          let v;
          try { v = mpDecode(frame); } catch (e) { check(false, `${this.name}: decodable frame (${e.message})`); continue; }
          this.frames = (this.frames || 0) + 1;
          if (!Array.isArray(v)) this.nonArrayFrames = (this.nonArrayFrames || 0) + 1;
          for (const m of Array.isArray(v) ? v : [v]) this.deliver(m);
        }
      });
      sock.on('close', () => { if (this.sock !== sock) return; this.closed = true; console.log(`${this.name.padEnd(4)} -- connection closed`); this.wake(); });
    });
  }
  // Failover (PROTOCOL.md): try each endpoint in turn until one accepts (a standby does not
  // listen, so it refuses at once), round after round until deadlineMs; the endpoint taken.
  async connectAny(endpoints, { deadlineMs = 15000, retryMs = 200 } = {}) {
    const until = Date.now() + deadlineMs;
    let last = null;
    for (let round = 0; Date.now() < until; round++) {
      for (const [host, port] of endpoints) {
        try { await this.connect(host, port); return [host, port]; } catch (e) { last = e; }
      }
      await new Promise((r) => setTimeout(r, retryMs));
    }
    throw new Error(`no endpoint of ${endpoints.map((e) => e.join(':')).join(',')} accepted: ${last && last.message}`);
  }
  writeBatch(msgs) {
    const body = mpEncode(msgs);
    const hdr = Buffer.alloc(4); hdr.writeUInt32BE(body.length, 0);
    this.sock.write(Buffer.concat([hdr, body]));
  }
  close() {
    return new Promise((resolve) => {
      if (this.closed) return resolve();
      this.sock.once('close', resolve);
      this.sock.end();
      setTimeout(() => { this.sock.destroy(); resolve(); }, 2000);
    });
  }
}

class WsSession extends Session {
  connect(url) {
    return new Promise((resolve, reject) => {
      this.ws = new WebSocket(url); // eslint-disable-line no-undef
      this.ws.binaryType = 'arraybuffer';
      this.ws.onopen = () => resolve();
      this.ws.onerror = (e) => reject(new Error('websocket error ' + (e.message || '')));
      this.ws.onmessage = (ev) => {
        const text = typeof ev.data === 'string' ? ev.data : Buffer.from(ev.data).toString('utf8');
        let v;
        try { v = jsonParse(text); } catch (e) { check(false, `${this.name}: JSON message (${e.message})`); return; }
        check(Array.isArray(v), `${this.name}: server WebSocket message is a JSON array`);
        for (const m of Array.isArray(v) ? v : [v]) this.deliver(m);
      };
      this.ws.onclose = (ev) => { this.closed = true; console.log(`${this.name.padEnd(4)} -- websocket closed code=${ev.code}`); this.wake(); };
    });
  }
  writeBatch(msgs) { this.ws.send(jsonStringify(msgs)); }
  close() {
    return new Promise((resolve) => {
      if (this.closed) return resolve();
      this.ws.addEventListener('close', () => resolve());
      this.ws.close(1000);
      setTimeout(resolve, 2000);
    });
  }
}

// ---------------------------------------------------------------- the scenario
function parseArgs(argv) {
  const o = { tcp: '127.0.0.1:7001', ws: '127.0.0.1:7002', keys: null, selftest: false, noWs: false };
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k];
    if (a === '--tcp') o.tcp = argv[++k];
    else if (a === '--ws') o.ws = argv[++k];
    else if (a === '--keys') o.keys = argv[++k];
    else if (a === '--no-ws') o.noWs = true;
    else if (a === '--selftest') o.selftest = true;
    else throw new Error('unknown argument ' + a);
  }
  return o;
}
function hostPort(s) { const k = s.lastIndexOf(':'); return [s.slice(0, k), Number(s.slice(k + 1))]; }
// HOST:PORT[,HOST:PORT...]: the endpoints of a primary and its standbys
function endpointList(s) { return s.split(',').filter(Boolean).map(hostPort); }
function readKeys(file) {
  // JSON lines as printed by `tonne accounts add --json`, or one JSON array of them
  const text = fs.readFileSync(file, 'utf8').trim();
  const keys = text.startsWith('[') ? JSON.parse(text) : text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  if (keys.length < 2) throw new Error('need two keys (two accounts) with trade and fund permissions');
  return keys;
}

function selftest() {
  console.log('== self test: msgpack, JSON big ints, signature example, L2 gap detection');
  const samples = [null, true, false, 0, 127, 128, 255, 256, 65535, 65536, 2 ** 32, -1, -32, -33, -129, -40000, -(2 ** 31) - 1,
    1700000000000000000n, -1700000000000000000n, 1.5, '', 'x'.repeat(31), 'é'.repeat(40), 'y'.repeat(70000), [], [1, [2, 'a']],
    new Array(20).fill(7), {}, { type: 'x', a: [1, 2], b: { c: null } }, Buffer.from([1, 2, 3])];
  for (const s of samples) check(eq(mpDecode(mpEncode(s)), s) || (Buffer.isBuffer(s) && mpDecode(mpEncode(s)).equals(s)),
    `msgpack round trip ${show(s).slice(0, 40)}`);
  check(mpEncode(1700000000000000000n)[0] === 0xcf, 'big int as uint64');
  check(eq(jsonParse('[{"ts":1700000000000000123,"f":1.5,"s":"a\\"b","n":null}]'), [{ ts: 1700000000000000123n, f: 1.5, s: 'a"b', n: null }]), 'JSON parse keeps big ints');
  check(jsonStringify({ ts: 1700000000000000123n }) === '{"ts":1700000000000000123}', 'JSON writes big ints as digits');
  const p = Buffer.from('k1a2b\n1700000000000000000\nn-1', 'utf8');
  check(p.length === 29, 'document example payload is 29 bytes');
  const b = new L2Book('S');
  b.snapshot({ seq: 5, bids: [[100, 3]], asks: [[110, 2]] });
  check(b.update({ seq: 4, side: 'buy', price: 99, qty: 1 }) === 'ignored', 'update at seq <= snapshot ignored');
  check(b.update({ seq: 6, side: 'buy', price: 100, qty: 0 }) === 'applied', 'next update applied');
  check(b.update({ seq: 8, side: 'sell', price: 110, qty: 0 }) === 'gap', 'seq 8 after 6 is a gap');
  check(!b.ready, 'book discarded after a gap');
}

// ---------------------------------------------------------------- baskets and buy-and-retire
// A (buyer) sends a screened basket over TONNE-CORSIA (the contract a new exchange lists for
// CORSIA-eligible units) bought to retire, then a buy-and-retire IOC new_order; B (seller)
// deposits the CORSIA-labelled VCS2925 2024 block by its registry serial string and sells.
const CORSIA_BLOCK = '19390-941471173-941821172-VCS-VCU-1289-VER-KH-3-2925-01012024-30062024-1';
const CORSIA_BATCH = '19390-*-VCS-VCU-1289-VER-KH-3-2925-01012024-30062024-1';
const tonnesOf = (serials) => serials.reduce((n, r) => n + r[3] - r[2] + 1, 0);

async function basketScenario(A, B, req, run) {
  console.log('\n== baskets: B deposits the CORSIA block by its serial string and sells TONNE-CORSIA');
  const contract = 'TONNE-CORSIA';
  A.send({ type: 'deposit', currency: 'USD', amount: 100000, req_id: req });
  let d = await A.expect((m) => m.req_id === req && (m.type === 'done' || m.type === 'reject'), 'deposit for the basket answered');
  check(d && d.type === 'done', 'A deposit done');
  req++;
  B.send({ type: 'deposit_credits', project: 'VCS2925', vintage: 2024, quantity: 350000, serial: CORSIA_BLOCK, req_id: req });
  d = await B.expect((m) => m.req_id === req && (m.type === 'done' || m.type === 'reject'), 'deposit_credits by serial answered');
  check(d && d.type === 'done', `B deposit_credits by registry serial done${d && d.reason ? ': ' + d.reason + ' ' + d.text : ''}`);
  req++;
  const asks = [[10, 900], [10, 905]];
  const askIds = [];
  for (const [q, px] of asks) {
    const coid = `corsia-${px}-${run}`;
    B.send({ type: 'new_order', client_order_id: coid, series: contract, side: 'sell', qty: q, price: px });
    const ack = await B.expect((m) => m.client_order_id === coid && (m.type === 'order_ack' || m.type === 'reject'), `ask ${q}@${px} on ${contract}`);
    check(ack && ack.type === 'order_ack', `B's ask ${q}@${px} rests${ack && ack.reason ? ': ' + ack.reason + ' ' + ack.text : ''}`);
    askIds.push(ack && ack.order_id);
  }

  console.log('\n== A: screen "label CORSIA and vintage >= 2021" (the screening language, a string on the wire)');
  const sreq = req++;
  A.send({ type: 'screen', expr: 'label CORSIA and vintage >= 2021', req_id: sreq });
  const hits = await A.expect((m) => m.type === 'screen_result' && m.req_id === sreq, 'screen_result');
  if (hits) {
    const named = hits.hits.find((h) => h.series === contract);
    check(named && named.best_ask === 900 && named.offered === 20 && named.rule !== '' && named.rule_version === 1,
      `the screen lists ${contract} with its book (ask ${named && named.best_ask}, ${named && named.offered} t offered) and rule v1`);
    check(named && named.credits.every((c) => c.labels.includes('CORSIA') && c.vintage >= 2021), 'every credit line it lists carries CORSIA, vintage 2021 or later');
  }
  const breqBad = req++;
  A.send({ type: 'screen', expr: 'label CORSIA and (', req_id: breqBad });
  const bad = await A.expect((m) => m.type === 'reject' && m.req_id === breqBad, 'a screen that does not parse is rejected');
  check(bad && bad.reason === 'INVALID_SCREEN' && /^screen at 18: |^at 18: /.test(bad.text), `INVALID_SCREEN pointing at the position: ${bad && bad.text}`);

  console.log('\n== A: basket_buy "label CORSIA" 15 t at most 905, FOK refused first, then IOC bought to retire');
  const fokCoid = `basket-fok-${run}`, fokReq = req++;
  A.send({ type: 'basket_buy', client_order_id: fokCoid, screen: 'label CORSIA', qty: 1000, price: 905, tif: 'fok', req_id: fokReq });
  const fok = await A.expect((m) => m.type === 'reject' && m.client_order_id === fokCoid, 'a FOK basket that cannot fill is rejected');
  check(fok && fok.reason === 'CANNOT_FILL' && fok.req_id === fokReq, `reason CANNOT_FILL with req_id echoed (${fok && fok.text})`);
  const coid = `basket-${run}`, breq = req++;
  const retire_for = { beneficiary: 'Harbour Airlines', purpose: 'corsia', claim: '2026 CORSIA offsetting', period_start: '2026-01-01', period_end: '2026-12-31' };
  A.send({ type: 'basket_buy', client_order_id: coid, screen: 'label CORSIA', qty: 15, price: 905, currency: 'USD', tif: 'ioc', retire_for, req_id: breq });
  const ack = await A.expect((m) => m.client_order_id === coid && (m.type === 'order_ack' || m.type === 'reject'), 'basket answered');
  if (!check(ack && ack.type === 'order_ack', `basket order_ack${ack && ack.reason ? ': ' + ack.reason + ' ' + ack.text : ''}`)) return req;
  check(ack.series === '' && ack.side === 'buy' && ack.qty === 15 && ack.price === 905, 'a basket\'s order_ack names series "" (no one book)');
  const f1 = await A.expect((m) => m.type === 'fill' && m.order_id === ack.order_id, 'first basket fill');
  const f2 = await A.expect((m) => m.type === 'fill' && m.order_id === ack.order_id, 'second basket fill');
  const done = await A.expect((m) => m.type === 'basket_done' && m.order_id === ack.order_id, 'basket_done');
  const cert = await A.expect((m) => m.type === 'order_certificate' && m.order_id === ack.order_id, 'order_certificate');
  if (!(f1 && f2 && done && cert)) return req;
  check(f1.series === contract && f1.qty === 10 && f1.price === 900 && f2.qty === 5 && f2.price === 905, 'cheapest first: 10@900 then 5@905, each fill naming its book');
  check(f1.liquidity === 'taker' && f1.client_order_id === coid, 'the basket is the taker, its fills carry its client_order_id');
  check(tonnesOf(f1.serials) === 10 && tonnesOf(f2.serials) === 5 && f1.serials.every((r) => r[0] === 'VCS2925' && r[4] === CORSIA_BATCH),
    `fills carry the delivered serials of the CORSIA batch: ${show(f1.serials)}`);
  check(f1.serials[0][5] === '19390-941471173-941471182-VCS-VCU-1289-VER-KH-3-2925-01012024-30062024-1', `registry_serial as Verra writes it: ${f1.serials[0][5]}`);
  check(done.filled === 15 && done.notional === 10 * 900 + 5 * 905 && eq(done.projects, ['VCS2925']) && done.req_id === breq,
    `basket_done: filled 15, notional ${done.notional} (average ${(done.notional / done.filled).toFixed(2)}), projects, req_id echoed`);
  check(cert.qty === 15 && cert.beneficiary === 'Harbour Airlines' && cert.purpose === 'corsia' && cert.period_end === '2026-12-31' && cert.req_id === breq,
    `one order_certificate ${cert.cert_id} for the basket's 15 t`);
  check(cert.fills.length === 2 && eq(cert.fills.map((f) => [f.trade_id, f.series, f.serials]), [f1, f2].map((f) => [f.trade_id, f.series, f.serials])),
    'the certificate lists every fill with the same serials');
  check(cert.fills.every((f) => Number.isInteger(f.record_seq) && /^[0-9a-f]{64}$/.test(f.record_hash)), 'each certificate fill names its fill_retirement record (seq, sha-256)');
  const makers = [];
  for (let k = 0; k < 2; k++) makers.push(await B.expect((m) => m.type === 'fill' && askIds.includes(m.order_id), `B's maker fill ${k + 1}`));
  if (makers[0] && makers[1]) check(eq(makers[0].serials, f1.serials) && makers[0].liquidity === 'maker', 'the maker\'s fill names the same serials');
  A.send({ type: 'holdings', req_id: req });
  const hold = await A.expect((m) => m.type === 'holdings' && m.req_id === req, 'A holdings after buy-and-retire');
  req++;
  check(hold && !hold.holdings.some((h) => h.project === 'VCS2925' && (h.available || h.held || h.serials.length)), 'A holds none of the retired credits: retired in the fill\'s own transaction');

  console.log('\n== A: new_order with retire_for, IOC (and GTC refused)');
  const gtcCoid = `retire-gtc-${run}`;
  A.send({ type: 'new_order', client_order_id: gtcCoid, series: contract, side: 'buy', qty: 5, price: 905, retire_for: { beneficiary: 'Kowloon Steel' } });
  const gtc = await A.expect((m) => m.type === 'reject' && m.client_order_id === gtcCoid, 'a GTC buy-and-retire order is rejected');
  check(gtc && gtc.reason === 'INVALID_RETIREMENT', 'reason INVALID_RETIREMENT: a buy-and-retire order never rests');
  const rCoid = `retire-ioc-${run}`;
  A.send({ type: 'new_order', client_order_id: rCoid, series: contract, side: 'buy', qty: 5, price: 905, tif: 'ioc', retire_for: { beneficiary: 'Kowloon Steel', purpose: 'voluntary' } });
  const rAck = await A.expect((m) => m.type === 'order_ack' && m.client_order_id === rCoid, 'buy-and-retire order_ack');
  const rFill = await A.expect((m) => m.type === 'fill' && m.client_order_id === rCoid, 'buy-and-retire fill');
  const rCert = await A.expect((m) => m.type === 'order_certificate' && m.client_order_id === rCoid, 'buy-and-retire order_certificate');
  if (rAck && rFill && rCert) {
    check(rAck.series === contract && rFill.qty === 5 && rFill.price === 905, 'filled the rest of the 905 ask');
    check(rCert.order_id === rAck.order_id && rCert.qty === 5 && rCert.beneficiary === 'Kowloon Steel' && rCert.req_id === 0 && rCert.cert_id !== cert.cert_id,
      'its own certificate (new_order has no req_id: 0)');
    check(rCert.fills.length === 1 && eq(rCert.fills[0].serials, rFill.serials), 'the certificate names the fill\'s serials');
  }
  return req;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  selftest();
  if (args.selftest) return;
  if (!args.keys) throw new Error('--keys FILE is required (two `tonne accounts add --json` lines)');
  const [keyA, keyB] = readKeys(args.keys);
  const endpoints = endpointList(args.tcp);
  let req = 1;

  console.log(`\n== connect and log on over TCP, the first of ${args.tcp} that accepts`);
  const A = new TcpSession('A'), B = new TcpSession('B');
  const [host, port] = await A.connectAny(endpoints);
  await B.connect(host, port);
  console.log(`     connected to ${host}:${port}`);
  // before logon only logon and heartbeat are accepted
  A.send({ type: 'balances', req_id: req });
  const nl = await A.expect((m) => m.type === 'reject', 'request before logon rejected');
  check(nl && nl.reason === 'NOT_LOGGED_ON' && nl.req_id === req, 'reject NOT_LOGGED_ON with req_id echoed');
  req++;
  // a bad signature is refused and the connection stays open
  const bad = logonMessage(keyA, req); bad.signature = '0'.repeat(64);
  A.send(bad);
  const lr = await A.expect((m) => m.type === 'logon_reject', 'bad signature gets logon_reject');
  check(lr && lr.reason === 'BAD_SIGNATURE', 'reason BAD_SIGNATURE');
  req++;
  const sessions = [[A, keyA], [B, keyB]];
  for (const [s, key] of sessions) {
    const r = req++;
    s.send(logonMessage(key, r));
    const ack = await s.expect((m) => m.req_id === r && (m.type === 'logon_ack' || m.type === 'logon_reject'), 'logon answered');
    check(ack && ack.type === 'logon_ack', `${s.name}: logon_ack (${ack && ack.reason ? ack.reason + ' ' + ack.text : 'accepted'})`);
    if (!ack || ack.type !== 'logon_ack') throw new Error('logon failed');
    check(ack.account === key.account, `${s.name}: logon_ack account ${ack.account} is the key's account ${key.account}`);
    s.limits = ack;
  }

  console.log('\n== reference data');
  A.send({ type: 'series', req_id: req });
  const sl = await A.expect((m) => m.type === 'series_list' && m.req_id === req, 'series_list');
  req++;
  const ser = sl.series.find((s) => !s.halted && s.project);
  check(!!ser, 'a tradable series with a project');
  console.log(`     ${sl.series.length} series; using ${show(ser)}`);
  const tick = ser.tick, lot = ser.lot;
  let price = ser.band_low > 0 && ser.band_high >= ser.band_low
    ? Math.ceil(((ser.band_low + ser.band_high) / 2) / tick) * tick : 1000 * tick;
  if (ser.band_high > 0 && price > ser.band_high) price = Math.floor(ser.band_high / tick) * tick;
  const qty = 10 * lot;
  const notional = price * qty;

  console.log('\n== funding: cash to A (buyer), a block of serials to B (seller)');
  A.send({ type: 'deposit', currency: ser.currency, amount: notional * 2, req_id: req });
  let d = await A.expect((m) => m.req_id === req && (m.type === 'done' || m.type === 'reject'), 'deposit answered');
  check(d && d.type === 'done' && d.request === 'deposit', 'deposit done');
  req++;
  const first = 1000000 + crypto.randomInt(0, 2 ** 40);
  const blockQty = qty * 3;
  B.send({ type: 'deposit_credits', project: ser.project, vintage: ser.vintage, start: first, end: first + blockQty - 1,
    quantity: blockQty, ref: 'node-client', req_id: req });
  d = await B.expect((m) => m.req_id === req && (m.type === 'done' || m.type === 'reject'), 'deposit_credits answered');
  check(d && d.type === 'done' && d.request === 'deposit_credits', 'deposit_credits done');
  req++;

  console.log('\n== balances and holdings before trading');
  A.send({ type: 'balances', req_id: req });
  const balA0 = await A.expect((m) => m.type === 'balances' && m.req_id === req, 'A balances');
  req++;
  B.send({ type: 'balances', req_id: req });
  const balB0 = await B.expect((m) => m.type === 'balances' && m.req_id === req, 'B balances');
  req++;
  B.send({ type: 'holdings', req_id: req });
  const holdB0 = await B.expect((m) => m.type === 'holdings' && m.req_id === req, 'B holdings');
  req++;
  const cash = (bal, cur) => { const c = (bal ? bal.cash : []).find((x) => x[0] === cur); return c ? { total: c[1], held: c[2] } : { total: 0, held: 0 }; };
  check(cash(balA0, ser.currency).total >= notional * 2, `A has at least the deposit: ${show(cash(balA0, ser.currency))}`);
  const h0 = holdB0 && holdB0.holdings.find((h) => h.project === ser.project && h.vintage === ser.vintage);
  check(h0 && h0.available >= blockQty, 'B holds the deposited credits');
  check(h0 && h0.serials.some((r) => r[2] === first && r[3] === first + blockQty - 1), 'B holdings list the exact deposited range');

  console.log(`\n== market data: A subscribes to ${ser.id}`);
  A.send({ type: 'subscribe', series: [ser.id], req_id: req });
  const snap = await A.expect((m) => m.type === 'book_snapshot' && m.series === ser.id, 'book_snapshot');
  const sd = await A.expect((m) => m.type === 'done' && m.req_id === req, 'done after subscribe');
  check(sd && sd.request === 'subscribe' && snap && snap.req_id === req, 'subscribe done, snapshot carries req_id');
  req++;
  const book = A.books.get(ser.id);

  console.log(`\n== A buys ${qty} @ ${price} (limit GTC), B sells ${qty} @ ${price} (crosses)`);
  const run = Date.now().toString(36);
  const coidBuy = `buy-${run}`, coidSell = `sell-${run}`;
  A.send({ type: 'new_order', client_order_id: coidBuy, series: ser.id, side: 'buy', qty, price });
  const ackBuy = await A.expect((m) => m.type === 'order_ack' && m.client_order_id === coidBuy, 'order_ack for the buy');
  const seqAfterBuy = await A.next((m) => m.type === 'book_update' && m.side === 'buy' && m.price === price && m.qty === qty);
  check(!!seqAfterBuy, 'A: book_update shows the resting bid');
  check(book.bids.get(price) === qty, `local book has the bid ${qty}@${price}`);
  // the resend of the same client order id must be rejected, not doubled
  A.send({ type: 'new_order', client_order_id: coidBuy, series: ser.id, side: 'buy', qty, price });
  const dup = await A.expect((m) => m.type === 'reject' && m.client_order_id === coidBuy, 'resent order rejected');
  check(dup && dup.reason === 'DUPLICATE_CLIENT_ORDER_ID', 'reason DUPLICATE_CLIENT_ORDER_ID');

  B.send({ type: 'new_order', client_order_id: coidSell, series: ser.id, side: 'sell', qty, price });
  const ackSell = await B.expect((m) => m.type === 'order_ack' && m.client_order_id === coidSell, 'order_ack for the sell');
  const fillB = await B.expect((m) => m.type === 'fill' && m.client_order_id === coidSell, 'fill for the seller');
  const fillA = await A.expect((m) => m.type === 'fill' && m.client_order_id === coidBuy, 'fill for the buyer');
  const pubTrade = await A.expect((m) => m.type === 'trade' && m.series === ser.id, 'public trade on the subscription');
  await A.next((m) => m.type === 'book_update' && m.side === 'buy' && m.price === price && m.qty === 0);
  const makerFee = Math.floor(notional * 5 / 10000), takerFee = Math.floor(notional * 15 / 10000);
  if (fillA && fillB && ackBuy && ackSell) {
    check(fillA.order_id === ackBuy.order_id && fillB.order_id === ackSell.order_id, 'fills carry the acked order ids');
    check(fillA.trade_id === fillB.trade_id && pubTrade && pubTrade.trade_id === fillA.trade_id, 'one trade id on both fills and the public trade');
    check(fillA.qty === qty && fillB.qty === qty && fillA.price === price && fillA.leaves_qty === 0 && fillB.leaves_qty === 0, 'full fill at the resting price');
    check(fillA.liquidity === 'maker' && fillB.liquidity === 'taker' && pubTrade.aggressor === 'sell', 'buyer maker, seller taker, aggressor sell');
    check(fillA.fee === makerFee && fillB.fee === takerFee, `fees maker 5 bps ${fillA.fee}=${makerFee}, taker 15 bps ${fillB.fee}=${takerFee}`);
    check(eq(fillA.serials, fillB.serials) && eq(fillA.serials, [[ser.project, ser.vintage, first, first + qty - 1, '', '']]),
      `serials delivered are the seller's lowest (no registry batch: batch and registry_serial empty): ${show(fillA.serials)}`);
  }
  check(!book.bids.has(price) && book.asks.size === (snap ? snap.asks.length : 0), `local book after the trade: ${book}`);

  console.log('\n== balances after the trade');
  A.send({ type: 'balances', req_id: req });
  const balA1 = await A.expect((m) => m.type === 'balances' && m.req_id === req, 'A balances');
  req++;
  B.send({ type: 'balances', req_id: req });
  const balB1 = await B.expect((m) => m.type === 'balances' && m.req_id === req, 'B balances');
  req++;
  A.send({ type: 'holdings', req_id: req });
  const holdA1 = await A.expect((m) => m.type === 'holdings' && m.req_id === req, 'A holdings');
  req++;
  if (balA1 && balB1) {
    const a0 = cash(balA0, ser.currency), a1 = cash(balA1, ser.currency), b0 = cash(balB0, ser.currency), b1 = cash(balB1, ser.currency);
    check(a1.total === a0.total - notional - makerFee && a1.held === a0.held, `A paid notional + maker fee: ${a0.total} -> ${a1.total}`);
    check(b1.total === b0.total + notional - takerFee, `B received notional - taker fee: ${b0.total} -> ${b1.total}`);
  }
  const hA = holdA1 && holdA1.holdings.find((h) => h.project === ser.project && h.vintage === ser.vintage);
  check(hA && hA.available >= qty && hA.serials.some((r) => r[2] === first && r[3] === first + qty - 1), 'A now holds the delivered serials');

  console.log('\n== B rests an ask, A re-subscribes (the gap-recovery path) and compares its book');
  const askPrice = price + tick, coidAsk = `ask-${run}`;
  B.send({ type: 'new_order', client_order_id: coidAsk, series: ser.id, side: 'sell', qty, price: askPrice });
  const ackAsk = await B.expect((m) => m.type === 'order_ack' && m.client_order_id === coidAsk, 'order_ack for the resting ask');
  await A.expect((m) => m.type === 'book_update' && m.side === 'sell' && m.price === askPrice, 'book_update for the ask');
  const before = { seq: book.seq, ...book.levels() };
  A.send({ type: 'subscribe', series: [ser.id], req_id: req });
  const snap2 = await A.expect((m) => m.type === 'book_snapshot' && m.req_id === req, 'fresh snapshot on re-subscribe');
  await A.expect((m) => m.type === 'done' && m.req_id === req, 'done after re-subscribe');
  req++;
  if (snap2) check(snap2.seq === before.seq && eq(snap2.bids, before.bids) && eq(snap2.asks, before.asks),
    `the book kept from updates equals the server's snapshot at seq ${snap2.seq}`);

  console.log('\n== B cancels the ask by client order id');
  B.send({ type: 'cancel', client_order_id: coidAsk, req_id: req });
  const cx = await B.expect((m) => m.type === 'cancelled' && m.client_order_id === coidAsk, 'cancelled');
  check(cx && cx.reason === 'user' && cx.qty === qty && ackAsk && cx.order_id === ackAsk.order_id && cx.req_id === req, 'cancel reason user, qty, order id, req_id');
  req++;
  await A.expect((m) => m.type === 'book_update' && m.side === 'sell' && m.price === askPrice && m.qty === 0, 'book_update removing the ask');
  await sleep(200);
  const dupUpdates = A.inbox.filter((m) => m.type === 'book_update');
  check(dupUpdates.length === 0, 'no duplicate updates after the re-subscribe');
  check(book.gaps === 0, `no sequence gaps (applied ${book.applied} updates, last seq ${book.seq})`);
  B.send({ type: 'open_orders', series: '', req_id: req });
  const oo = await B.expect((m) => m.type === 'open_orders' && m.req_id === req, 'open_orders');
  check(oo && oo.orders.length === 0, 'B has no open orders');
  req++;

  console.log('\n== heartbeat');
  for (const s of [A, B]) {
    const r = req++;
    s.send({ type: 'heartbeat', req_id: r });
    const hb = await s.expect((m) => m.type === 'heartbeat' && m.req_id === r, 'heartbeat answered with req_id');
    check(hb && typeof hb.ts === 'bigint', `${s.name}: heartbeat ts is integer nanoseconds`);
  }

  // WebSocket (JSON) path
  console.log('\n== WebSocket (JSON)');
  if (args.noWs) console.log('     skipped (--no-ws)');
  else if (typeof WebSocket !== 'function') console.log(`     skipped: node ${process.version} has no global WebSocket (use Node 22+, or node --experimental-websocket on 20/21)`);
  else {
    const W = new WsSession('W');
    const [wh, wp] = hostPort(args.ws);
    await W.connect(`ws://${wh}:${wp}/`);
    const r = req++;
    W.send(logonMessage(keyA, r));
    const ack = await W.expect((m) => m.req_id === r && m.type === 'logon_ack', 'logon_ack over WebSocket');
    check(ack && ack.account === keyA.account, 'same account as over TCP');
    const rb = req++;
    W.send([{ type: 'balances', req_id: rb }, { type: 'subscribe', series: [ser.id], req_id: rb + 1 }]);
    req++;
    const wb = await W.expect((m) => m.type === 'balances' && m.req_id === rb, 'balances over WebSocket');
    if (wb && balA1) check(eq(wb.cash, balA1.cash), 'same balances as over TCP');
    const ws2 = await W.expect((m) => m.type === 'book_snapshot', 'snapshot over WebSocket');
    if (ws2) check(ws2.seq === book.seq && eq(ws2.bids, book.levels().bids) && eq(ws2.asks, book.levels().asks), 'WebSocket snapshot equals the TCP-kept book');
    const coid = `ws-${run}`;
    W.send({ type: 'new_order', client_order_id: coid, series: ser.id, side: 'buy', qty: lot, price: price - tick });
    const wa = await W.expect((m) => m.type === 'order_ack' && m.client_order_id === coid, 'order_ack over WebSocket');
    const ta = await A.expect((m) => m.type === 'order_ack' && m.client_order_id === coid, 'the TCP session of the same account also gets the order_ack');
    check(wa && ta && wa.order_id === ta.order_id, 'same order id on both sessions');
    const rc = req++;
    W.send({ type: 'mass_cancel', series: ser.id, req_id: rc });
    await W.expect((m) => m.type === 'cancelled' && m.client_order_id === coid, 'mass cancel: cancelled');
    const md = await W.expect((m) => m.type === 'done' && m.req_id === rc, 'mass cancel: done');
    check(md && md.count === 1, 'mass cancel count 1');
    const rh = req++;
    W.send({ type: 'heartbeat', req_id: rh });
    await W.expect((m) => m.type === 'heartbeat' && m.req_id === rh, 'heartbeat over WebSocket');
    await W.close();
  }

  req = await basketScenario(A, B, req, run);

  console.log('\n== close');
  await sleep(300);
  console.log(`     final book ${book}`);
  await A.close(); await B.close();
  check(A.closed && B.closed, 'both TCP connections closed');
  check(!A.nonArrayFrames && !B.nonArrayFrames, `every TCP frame from the server was an array (${A.frames + B.frames} frames)`);
}

module.exports = { mpEncode, mpDecode, jsonParse, jsonStringify, logonMessage, L2Book, TcpSession, WsSession, endpointList };
if (require.main === module) main().then(() => {
  console.log(failures.length ? `\n${failures.length} FAILED:\n  - ${failures.join('\n  - ')}` : '\nALL CHECKS PASSED');
  process.exit(failures.length ? 1 : 0);
}, (e) => {
  console.log('\nERROR ' + (e && e.stack || e));
  if (failures.length) console.log(`${failures.length} FAILED:\n  - ${failures.join('\n  - ')}`);
  process.exit(2);
});
