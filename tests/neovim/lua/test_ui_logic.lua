-- Unit tests of rendering and parsing helpers (no sidecar).
local it, eq = ...

it('JWT claims are decoded for :checkhealth', function()
  local b64 = function(s)
    return (vim.base64.encode(s):gsub('=', ''):gsub('+', '-'):gsub('/', '_'))
  end
  local token = b64('{"alg":"HS256"}')
    .. '.'
    .. b64('{"sub":"bob","sid":"s_1","exp":2000000000}')
    .. '.sig'
  eq({ sub = 'bob', sid = 's_1', exp = 2000000000 }, require('collab.health').jwt_claims(token))
  eq(nil, require('collab.health').jwt_claims('not-a-token'))
end)

it(':Collab completes subcommands, names and roles', function()
  local commands = require('collab.commands')
  require('collab.client').participants = {
    { name = 'alice', userId = 'alice' },
    { name = 'bob', userId = 'bob', isYou = true },
  }
  eq({ 'comment', 'comments' }, commands.complete('comm', 'Collab comm'))
  eq({ 'alice' }, commands.complete('', 'Collab follow '))
  eq({ 'editor', 'viewer' }, commands.complete('', 'Collab invite '))
  eq({ 'viewer' }, commands.complete('v', 'Collab role alice v'))
  eq({ 'alice' }, commands.complete('a', "'<,'>Collab kick a"))
end)

it('chat messages render with name, edits, replies and reactions', function()
  local chat = require('collab.chat')
  local m = {
    id = 'm_1',
    user_id = 'alice',
    username = 'alice',
    content = 'hi\nthere',
    timestamp = '2026-11-25T19:51:41.206Z',
    reactions = { ['👀'] = { 'bob', 'carol' } },
  }
  eq({ '19:51 alice: hi', '      there', '      👀 2' }, chat.format(m))
  eq(
    { '  ↳ 19:51 bob: ok (edited)' },
    chat.format({
      username = 'bob',
      content = 'ok',
      parent_id = 'm_1',
      edited_at = 'x',
      timestamp = '2026-11-25T19:51:41.206Z',
    })
  )
  eq(
    { '19:51 bob: (deleted)' },
    chat.format({
      username = 'bob',
      content = '',
      deleted = true,
      timestamp = '2026-11-25T19:51:41.206Z',
    })
  )
end)

it('threads become quickfix items and float text', function()
  local comments = require('collab.comments')
  local thread = {
    threadId = 'm_1',
    file = 'src/app.py',
    uri = 'file:///w/src/app.py',
    line = 5,
    currentLine = 3,
    resolved = false,
    comments = {
      { username = 'alice', content = 'split it?\nplease', timestamp = '2026-11-25T19:51:41Z' },
      {
        username = 'bob',
        content = 'ok',
        timestamp = '2026-11-25T19:52:00Z',
        reactions = { ['👍'] = { 'alice' } },
      },
    },
  }
  local items = comments.qf_items({ thread })
  eq('/w/src/app.py', items[1].filename)
  eq(4, items[1].lnum, 'the current anchor wins over the stored line')
  eq('alice: split it? (1 reply)', items[1].text)
  local lines = comments.render({ thread })
  eq('**Thread** `src/app.py:5`', lines[1])
  assert(vim.tbl_contains(lines, '**bob** · 2026-11-25 19:52'), vim.inspect(lines))
  assert(vim.tbl_contains(lines, '👍 1'), vim.inspect(lines))
end)
