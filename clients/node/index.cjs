'use strict';
/**
 * CommonJS entry point: `const { SessionManager } = require('sessiond-client')`. The implementation
 * is the ES module index.js, loaded with require(esm) (on by default from Node 20.19 and 22.12), so
 * `require` and `import` share the same classes.
 */
try {
  module.exports = require('./index.js');
} catch (err) {
  if (err && err.code === 'ERR_REQUIRE_ESM') {
    throw new Error(
      `sessiond-client: require() needs Node >= 20.19 (require of ES modules; this is ${process.version}); ` +
        'use import instead, or upgrade Node',
      { cause: err },
    );
  }
  throw err;
}
