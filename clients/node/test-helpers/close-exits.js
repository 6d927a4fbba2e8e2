// Child process of events.test.js: uses the client (event stream open, keep-alive connections in
// the pool), then calls close() and does nothing else. It must exit by itself: nothing may keep
// the event loop alive after close().
import { SessionManager } from '../index.js';

const sm = new SessionManager({ url: process.argv[2] });
sm.on('sessionDeleted', () => {});
await sm.ready();
const key = await sm.loadNewSession('exits');
await Promise.all([sm.checkSessionStatus(key), sm.getSessionTimeout(), sm.getLoggedUsers()]);
await sm.deleteSession(key);
await sm.close();
try {
  await sm.checkSessionStatus(key);
} catch (err) {
  console.log(`closed: ${err.code}`);
}
