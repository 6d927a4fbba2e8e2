// The Server-Sent-Events parser on its own: line endings, chunk boundaries, fields, ids.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SseParser } from '../lib/sse.js';

/** Feeds `chunks` to a new parser and returns the dispatched messages. */
function parse(chunks, lastEventId) {
  const messages = [];
  const parser = new SseParser((m) => messages.push(m), lastEventId);
  for (const chunk of chunks) parser.feed(chunk);
  return { messages, parser };
}

test('sessiond\'s frames: comments skipped, id/event/data dispatched on the blank line', () => {
  const { messages, parser } = parse([
    ': connected\n\nid: run-1\nevent: created\ndata: {"id":"a"}\n\n: keep-alive\n\nid: run-2\nevent: ended\ndata: {"id":"a"}\n\n',
  ]);
  assert.deepEqual(messages, [
    { event: 'created', data: '{"id":"a"}', lastEventId: 'run-1' },
    { event: 'ended', data: '{"id":"a"}', lastEventId: 'run-2' },
  ]);
  assert.equal(parser.lastEventId, 'run-2');
});

test('CRLF and CR line endings, including a CRLF split across chunks', () => {
  const { messages } = parse(['id: 1\r\nevent: created\r', '\ndata: x\r\n\r', '\nid: 2\revent: ended\rdata: y\r\r']);
  assert.deepEqual(messages, [
    { event: 'created', data: 'x', lastEventId: '1' },
    { event: 'ended', data: 'y', lastEventId: '2' },
  ]);
});

test('any chunk boundary gives the same messages', () => {
  const text = 'id: r-7\nevent: ended\ndata: {"username":"é","n":[1,2]}\n\nevent: gap\ndata: {"type":"gap"}\n\n';
  const whole = parse([text]).messages;
  assert.equal(whole.length, 2);
  for (const variant of [text, text.replaceAll('\n', '\r\n'), text.replaceAll('\n', '\r')]) {
    assert.deepEqual(parse([variant]).messages, whole);
    for (let cut = 1; cut < variant.length; cut++) {
      assert.deepEqual(parse([variant.slice(0, cut), variant.slice(cut)]).messages, whole, `cut at ${cut}`);
    }
  }
});

test('multi-line data, a field without a colon, no space after the colon, a leading BOM', () => {
  const { messages } = parse(['\uFEFFdata:first\ndata: second\ndata\nevent:named\n\n']);
  assert.deepEqual(messages, [{ event: 'named', data: 'first\nsecond\n', lastEventId: '' }]);
});

test('an event without data is not dispatched; its id counts only once its blank line arrived', () => {
  const { messages, parser } = parse(['id: 5\n\n', 'id: 6\nevent: created\ndata: z'], 'start');
  assert.deepEqual(messages, []);
  assert.equal(parser.lastEventId, '5', 'the id of the unfinished event is not the last id yet');
  parser.feed('\n\n');
  assert.deepEqual(messages, [{ event: 'created', data: 'z', lastEventId: '6' }]);
});

test('without an event field the type is message; an id with NUL is ignored', () => {
  const { messages } = parse(['id: ok\ndata: a\n\nid: bad\u0000id\ndata: b\n\n'], '');
  assert.deepEqual(messages, [
    { event: 'message', data: 'a', lastEventId: 'ok' },
    { event: 'message', data: 'b', lastEventId: 'ok' },
  ]);
});
