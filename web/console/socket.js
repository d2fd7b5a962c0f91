// The console's connection to /ws/agent (protocol: docs/websocket-protocol.md).
// It reconnects with exponential backoff, replays what the open conversation
// missed (hello.resume), and keeps every unacknowledged send until the server
// acknowledges it — resending the same client_id after a reconnect, which the
// server stores only once.

import { uuid } from './dom.js';

export class AgentSocket {
  /**
   * onFrame(frame): every server frame, after the socket's own bookkeeping.
   * onState(state): 'connecting' | 'online' | 'offline'.
   * resume(): {conversation_id: last seq held} to replay after a reconnect.
   */
  constructor({ onFrame, onState, resume }) {
    this.onFrame = onFrame;
    this.onState = onState;
    this.resume = resume;
    this.ws = null;
    this.ready = false;
    this.backoff = 0;
    this.timer = 0;
    this.welcomed = 0;
    this.lastHeard = 0;
    /** client_id -> {client_id, conversation_id, text, note, error, at} */
    this.pending = new Map();
    addEventListener('online', () => this.connect());
    document.addEventListener('visibilitychange', () => { if (!document.hidden) this.connect(); });
    setInterval(() => this.keepAlive(), 30000);
  }

  connect() {
    clearTimeout(this.timer);
    if (this.ws) return;
    this.onState('connecting');
    const ws = (this.ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/agent`));
    ws.onopen = () => { this.lastHeard = Date.now(); };
    ws.onmessage = (e) => {
      if (this.ws !== ws) return;
      this.lastHeard = Date.now();
      let f;
      try { f = JSON.parse(e.data); } catch { return; }
      this.handle(f);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.ready = false;
      this.onState('offline');
      const wait = Math.min(30000, 1000 * 2 ** this.backoff++);
      this.timer = setTimeout(() => this.connect(), wait / 2 + (Math.random() * wait) / 2);
    };
  }

  reconnect() {
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    ws?.close();
    this.connect();
  }

  keepAlive() {
    if (!this.ws || !this.ready) return;
    if (Date.now() - this.lastHeard > 70000) this.reconnect();
    else this.send({ type: 'ping' });
  }

  handle(f) {
    switch (f.type) {
      case 'agent_welcome': {
        this.ready = true;
        this.backoff = 0;
        f.reconnected = this.welcomed++ > 0;
        const resume = this.resume();
        if (f.reconnected && Object.keys(resume).length) this.send({ type: 'hello', resume });
        this.onState('online');
        this.flush();
        break;
      }
      case 'ack':
        f.pending = this.pending.get(f.client_id);
        this.pending.delete(f.client_id);
        break;
      case 'error': {
        const p = f.client_id && this.pending.get(f.client_id);
        if (p && (f.code === 'rate_limited' || f.code === 'internal')) setTimeout(() => this.flush(), 1500);
        else if (p) p.error = f.message || f.code;
        f.pending = p;
        break;
      }
      case 'resync':
        // Missed events: reconnect, which replays the open conversation and
        // makes the console reload its lists.
        this.reconnect();
        break;
    }
    this.onFrame(f);
  }

  send(frame) {
    if (!this.ws || !this.ready) return false;
    try {
      this.ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  /** Queues a reply or note; it stays pending until acknowledged. */
  sendMessage(conversation_id, text, note, attachments = []) {
    const p = { client_id: uuid(), conversation_id, text, note, attachments, error: null, at: new Date().toISOString() };
    this.pending.set(p.client_id, p);
    this.sendPending(p);
    return p;
  }

  retry(p) {
    p.error = null;
    this.sendPending(p);
  }

  discard(p) {
    this.pending.delete(p.client_id);
  }

  sendPending(p) {
    this.send({
      type: 'send', client_id: p.client_id, conversation_id: p.conversation_id, text: p.text, note: p.note,
      attachment_ids: p.attachments.map((a) => a.id),
    });
  }

  flush() {
    for (const p of this.pending.values()) if (!p.error) this.sendPending(p);
  }
}
