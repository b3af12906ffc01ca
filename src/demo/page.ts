/**
 * The demo chat page served at `/`: plain HTML, CSS and the browser's own WebSocket. With a
 * streams bridge each chat message has an id: the page keeps the last one and the messages it
 * shows in sessionStorage (this tab only), and connects with `/chat?since=ID`, so a reload or a
 * reconnect gets what it missed; an id it already has is never shown twice.
 */
export const CHAT_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>shardws chat</title>
<link rel="icon" href="/favicon.ico">
<style>
  :root { color-scheme: light dark; --accent: #2f6fed; font-family: system-ui, sans-serif; }
  body { margin: 0; display: grid; grid-template-rows: auto 1fr auto; height: 100vh; height: 100dvh; overflow-x: hidden; }
  header { padding: .75rem 1rem; border-bottom: 1px solid #8884; display: flex; gap: 1rem; align-items: baseline; flex-wrap: wrap; }
  header h1 { font-size: 1.1rem; margin: 0; }
  #status, #members { font-size: .9rem; opacity: .8; }
  #workers { display: flex; flex-wrap: wrap; gap: .5rem; font-size: .85rem; }
  #workers span { padding: .1rem .5rem; border-radius: 1rem; background: #8882; }
  #workers span.mine { background: var(--accent); color: white; }
  #status::before { content: ''; display: inline-block; width: .6rem; height: .6rem; border-radius: 50%; margin-right: .4rem; background: #c33; vertical-align: baseline; }
  #status.up::before { background: #2a2; }
  #log { overflow-y: auto; padding: 1rem; margin: 0; list-style: none; display: flex; flex-direction: column; gap: .35rem; min-width: 0; }
  #log li { max-width: 85%; padding: .35rem .7rem; border-radius: .8rem; background: #8882; align-self: flex-start; overflow-wrap: anywhere; }
  #log li.mine { align-self: flex-end; background: var(--accent); color: white; }
  #log li.system { align-self: center; background: none; font-size: .8rem; opacity: .7; }
  #log .meta { display: block; font-size: .7rem; opacity: .7; margin-top: .1rem; }
  #empty { opacity: .6; text-align: center; margin-top: 2rem; }
  /* Name, message, Send on one row; below 30rem (phones) the name takes its own row. Inputs may
     shrink below their intrinsic width (min-width: 0), so the row never overflows the screen. */
  form { display: grid; grid-template-columns: minmax(0, 9rem) minmax(0, 1fr) auto; gap: .5rem; padding: .75rem 1rem; border-top: 1px solid #8884; }
  @media (max-width: 30rem) { form { grid-template-columns: minmax(0, 1fr) auto; padding: .5rem; } .field-name { grid-column: 1 / -1; } }
  .field { display: flex; flex-direction: column; min-width: 0; }
  .field label { font-size: .75rem; opacity: .8; margin-bottom: .15rem; }
  input { font: inherit; padding: .4rem .6rem; min-width: 0; width: 100%; box-sizing: border-box; }
  button { font: inherit; padding: .4rem 1rem; background: var(--accent); color: white; border: 0; border-radius: .3rem; align-self: end; min-height: 2.2rem; }
</style>
</head>
<body>
<header>
  <h1>shardws chat</h1>
  <span id="status">connecting…</span>
  <span id="members" aria-label="people in the room"></span>
  <div id="workers" aria-label="connections per worker"></div>
</header>
<ul id="log" aria-live="polite"><li id="empty" class="system">No messages yet. Open this page in a second tab: it may land on another worker, and chat still reaches it.</li></ul>
<form id="form">
  <div class="field field-name"><label for="name">Your name</label><input id="name" maxlength="32" autocomplete="nickname"></div>
  <div class="field"><label for="text">Message</label><input id="text" placeholder="say something" maxlength="2000" autocomplete="off" enterkeyhint="send"></div>
  <button type="submit">Send</button>
</form>
<script>
  const log = document.getElementById('log');
  const status = document.getElementById('status');
  const workersEl = document.getElementById('workers');
  const members = document.getElementById('members');
  const nameInput = document.getElementById('name');
  nameInput.value = localStorage.getItem('shardws-name') || 'guest-' + Math.floor(Math.random() * 1000);
  let myWorker = -1;
  let ws = null;
  let retry = 500;
  // Streams mode: the last message id this tab has, and the messages it shows (kept across reloads).
  const KEPT = 100;
  let kept = { lastId: null, messages: [] };
  try { kept = JSON.parse(sessionStorage.getItem('shardws-chat')) || kept; } catch {}
  // Ids are <milliseconds>-<sequence>: later ones are larger.
  const newer = (a, b) => {
    const [am, as] = a.split('-').map(Number);
    const [bm, bs] = b.split('-').map(Number);
    return am > bm || (am === bm && as > bs);
  };
  const time = (at) => new Date(at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  function system(text) {
    const li = document.createElement('li');
    li.className = 'system';
    li.textContent = text;
    log.append(li);
  }
  function connect() {
    const since = kept.lastId ? '?since=' + encodeURIComponent(kept.lastId) : '';
    ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/chat' + since);
    ws.onopen = () => { retry = 500; status.textContent = 'connected'; status.classList.add('up'); };
    ws.onclose = (e) => {
      status.classList.remove('up');
      status.textContent = 'disconnected (' + e.code + '), reconnecting…';
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    };
    ws.onmessage = onMessage;
  }
  function onMessage(event) {
    const msg = JSON.parse(event.data);
    if (msg.type === 'welcome') {
      myWorker = msg.worker;
      status.textContent = 'connected to worker ' + msg.worker + ' of ' + msg.workers;
      status.dataset.worker = String(msg.worker);
      system('You are served by worker ' + msg.worker + '.');
    } else if (msg.type === 'members') {
      members.textContent = msg.members + (msg.members === 1 ? ' person' : ' people') + ' in the room';
      members.dataset.members = String(msg.members);
    } else if (msg.type === 'workers') {
      workersEl.replaceChildren(...msg.workers.map((w) => {
        const span = document.createElement('span');
        span.textContent = 'worker ' + w.worker + ': ' + w.connections;
        span.dataset.worker = String(w.worker);
        span.dataset.connections = String(w.connections);
        if (w.worker === myWorker) span.className = 'mine';
        return span;
      }));
    } else if (msg.type === 'recovery') {
      if (!msg.complete) system('Some messages sent while you were away are gone (older than the server keeps).');
      else if (msg.replayed > 0) system(msg.replayed + (msg.replayed === 1 ? ' message' : ' messages') + ' arrived while you were away.');
    } else if (msg.type === 'chat') {
      if (msg.id) {
        if (kept.lastId && !newer(msg.id, kept.lastId)) return;
        kept.lastId = msg.id;
        kept.messages = [...kept.messages, msg].slice(-KEPT);
        sessionStorage.setItem('shardws-chat', JSON.stringify(kept));
      }
      showChat(msg);
    }
  }
  function showChat(msg) {
    document.getElementById('empty')?.remove();
    const li = document.createElement('li');
    if (msg.id) li.dataset.id = msg.id;
    if (msg.name === nameInput.value) li.className = 'mine';
    const who = document.createElement('strong');
    who.textContent = msg.name + ': ';
    const meta = document.createElement('span');
    meta.className = 'meta';
    meta.textContent = time(msg.at) + ' · via worker ' + msg.worker;
    li.append(who, document.createTextNode(msg.text), meta);
    log.append(li);
    log.scrollTop = log.scrollHeight;
  }
  // What this tab showed before a reload; what came meanwhile follows once connected.
  if (kept.lastId) kept.messages.forEach(showChat);
  connect();
  document.getElementById('form').addEventListener('submit', (event) => {
    event.preventDefault();
    const text = document.getElementById('text');
    if (!text.value || ws === null || ws.readyState !== WebSocket.OPEN) return;
    localStorage.setItem('shardws-name', nameInput.value);
    ws.send(JSON.stringify({ name: nameInput.value, text: text.value }));
    text.value = '';
  });
</script>
</body>
</html>
`;
