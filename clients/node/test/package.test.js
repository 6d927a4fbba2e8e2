// The package loads with import and with require (same classes), its exports map both, and
// index.d.ts declares every public method.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as esm from '../index.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));

test('import and require load the same SessionManager, SessiondError and createMiddleware', () => {
  const cjs = require(ROOT); // the directory: package.json "main"
  for (const name of ['SessionManager', 'SessiondError', 'createMiddleware']) {
    assert.equal(typeof esm[name], 'function', `import gives ${name}`);
    assert.equal(cjs[name], esm[name], `require gives the same ${name}`);
  }
  const sm = new cjs.SessionManager({ url: 'http://127.0.0.1:1' });
  assert.ok(sm instanceof esm.SessionManager);
  return sm.close();
});

test('the package name resolves through "exports" for both import and require', () => {
  assert.equal(pkg.exports['.'].import, './index.js');
  assert.equal(pkg.exports['.'].require, './index.cjs');
  assert.equal(pkg.main, './index.cjs');
  // Self-reference by package name, from a fresh process in each module system.
  const cjsOut = execFileSync(process.execPath, ['-e', `console.log(typeof require(${JSON.stringify(pkg.name)}).SessionManager)`], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  assert.equal(cjsOut.trim(), 'function');
  const esmOut = execFileSync(
    process.execPath,
    ['--input-type=module', '-e', `import { SessionManager } from ${JSON.stringify(pkg.name)}; console.log(typeof SessionManager)`],
    { cwd: ROOT, encoding: 'utf8' },
  );
  assert.equal(esmOut.trim(), 'function');
});

test('the package depends on nothing but node: modules', () => {
  assert.equal(pkg.dependencies, undefined);
  const files = ['index.js', ...readdirSync(path.join(ROOT, 'lib')).map((f) => path.join('lib', f))];
  assert.ok(files.length >= 8, `${files.length} files`);
  for (const file of files) {
    const source = readFileSync(path.join(ROOT, file), 'utf8');
    for (const [, specifier] of source.matchAll(/from '([^']+)'/g)) {
      assert.ok(specifier.startsWith('node:') || specifier.startsWith('./'), `${file} imports ${specifier}`);
    }
  }
});

test('index.d.ts declares every public method of SessionManager and every export', () => {
  const dts = readFileSync(path.join(ROOT, 'index.d.ts'), 'utf8');
  const methods = Object.getOwnPropertyNames(esm.SessionManager.prototype).filter((name) => name !== 'constructor');
  const nodeLibrary = [
    'loadNewSession',
    'checkSessionStatus',
    'restartSessionTimer',
    'setSessionData',
    'getSessionData',
    'getSessionDetails',
    'deleteSession',
    'deleteAllSessions',
    'getLoggedUsers',
    'setSessionTimeOut',
    'getSessionTimeout',
    'getUsernameFromSessionKey',
    'initSocketReference',
  ];
  for (const name of nodeLibrary) assert.ok(methods.includes(name), `SessionManager has ${name}`);
  for (const name of methods) {
    assert.match(dts, new RegExp(`\\n\\s+${name}(<[^>]*>)?\\(`), `index.d.ts declares ${name}`);
  }
  for (const name of Object.keys(esm)) {
    assert.match(dts, new RegExp(`export (declare )?(class|function) ${name}\\b`), `index.d.ts declares the export ${name}`);
  }
  for (const event of ['sessionCreated', 'sessionDeleted', 'notifyClientToLogout', 'resync', 'streamError']) {
    assert.ok(dts.includes(`on(event: '${event}'`), `index.d.ts types the ${event} event`);
  }
});
