// Desktop notifications and a short beep (WebAudio, nothing downloaded) for
// new customer messages while the console's tab is hidden.

let audio = null;

/** Browsers allow sound and the permission prompt only after a user gesture. */
export function unlock() {
  try {
    audio = audio || new (window.AudioContext || window.webkitAudioContext)();
    if (audio.state === 'suspended') audio.resume();
  } catch { audio = null; }
}

export function permission() {
  return 'Notification' in window ? Notification.permission : 'unsupported';
}

export async function askPermission() {
  unlock();
  if ('Notification' in window && Notification.permission === 'default') await Notification.requestPermission();
  return permission();
}

export function beep() {
  if (!audio || audio.state !== 'running') return;
  const t = audio.currentTime;
  const osc = audio.createOscillator();
  const gain = audio.createGain();
  osc.type = 'sine';
  osc.frequency.setValueAtTime(880, t);
  osc.frequency.setValueAtTime(1320, t + 0.09);
  gain.gain.setValueAtTime(0.0001, t);
  gain.gain.exponentialRampToValueAtTime(0.2, t + 0.02);
  gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.25);
  osc.connect(gain).connect(audio.destination);
  osc.start(t);
  osc.stop(t + 0.26);
}

/** Notifies of a message; a click brings the console to that conversation. */
export function notify(title, body, tag, onClick) {
  beep();
  if (permission() !== 'granted') return;
  try {
    const n = new Notification(title, { body: body.slice(0, 200), tag, renotify: true });
    n.onclick = () => { window.focus(); onClick?.(); n.close(); };
  } catch { /* some browsers allow notifications only from a service worker */ }
}
