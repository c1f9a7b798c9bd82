-- Unit tests of the plugin's pure logic (colours, positions, coalescing, text).
local it, eq = ...
local util = require('collab.util')

local LINE = "    print('héllo😀 world')"

it('colour index matches the sidecar (sha256 of the user id, mod 12)', function()
  -- docs/editor-protocol.md §10: alice -> 1, bob -> 0, carol -> 11
  eq(1, util.color_index('alice'))
  eq(0, util.color_index('bob'))
  eq(11, util.color_index('carol'))
end)

it('colour slot uses colorIndex when given, else the same hash; always 1..12', function()
  eq(5, util.color_slot({ userId = 'alice', colorIndex = 4 }))
  eq(2, util.color_slot({ userId = 'alice' }))
  eq(2, util.color_slot({ userId = 'alice', colorIndex = 99 }))
  for _, name in ipairs({ 'a', 'b', 'zoë', 'u_WbSKWOeT-gQk', '' }) do
    local slot = util.color_slot({ userId = name })
    assert(slot >= 1 and slot <= 12, name)
    eq(slot, util.color_slot({ userId = name }), 'stable for ' .. name)
  end
end)

it('byte columns convert to LSP characters in every encoding', function()
  -- the table of docs/editor-protocol.md §4.2: before é, after é, after 😀, end of line
  local bytes = { 12, 14, 21, 29 }
  eq(
    { 12, 14, 21, 29 },
    vim.tbl_map(function(b)
      return util.byte_to_lsp(LINE, b, 'utf-8')
    end, bytes)
  )
  eq(
    { 12, 13, 18, 26 },
    vim.tbl_map(function(b)
      return util.byte_to_lsp(LINE, b, 'utf-16')
    end, bytes)
  )
  eq(
    { 12, 13, 17, 25 },
    vim.tbl_map(function(b)
      return util.byte_to_lsp(LINE, b, 'utf-32')
    end, bytes)
  )
end)

it('LSP characters convert back to byte columns, clamped and never inside a character', function()
  eq(21, util.lsp_to_byte(LINE, 18, 'utf-16'))
  eq(21, util.lsp_to_byte(LINE, 17, 'utf-32'))
  eq(17, util.lsp_to_byte(LINE, 17, 'utf-16'), 'between the halves of 😀 rounds down')
  eq(17, util.lsp_to_byte(LINE, 19, 'utf-8'), 'inside 😀 (utf-8) rounds down')
  eq(12, util.lsp_to_byte(LINE, 12, 'utf-16'), 'before é')
  eq(14, util.lsp_to_byte(LINE, 13, 'utf-16'), 'after é')
  eq(#LINE, util.lsp_to_byte(LINE, 500, 'utf-16'))
  eq(#LINE, util.lsp_to_byte(LINE, 500, 'utf-8'))
  eq(0, util.lsp_to_byte('', 3, 'utf-8'))
end)

it('positions clamp into the buffer', function()
  local lines = { 'abc', LINE }
  eq({ 1, 21 }, { util.clamp(lines, { line = 1, character = 18 }, 'utf-16') })
  eq({ 1, #LINE }, { util.clamp(lines, { line = 9, character = 99 }, 'utf-8') })
  eq({ 0, 0 }, { util.clamp({}, { line = 3, character = 1 }, 'utf-8') })
end)

it('selections are sorted', function()
  local a, b = { line = 4, character = 2 }, { line = 1, character = 9 }
  eq({ b, a }, { util.sorted(a, b) })
  eq({ b, a }, { util.sorted(b, a) })
end)

-- A timer that fires only when the test says so.
local function fake_timer()
  local t = { started = 0 }
  function t:start(ms, _, cb)
    self.started, self.ms, self.cb = self.started + 1, ms, cb
  end
  function t:stop()
    self.cb = nil
  end
  function t:fire()
    local cb = self.cb
    self.cb = nil
    cb()
  end
  return t
end

it('coalescer sends one call with the latest arguments per window', function()
  local calls, timer = {}, fake_timer()
  local send = util.coalescer(50, function(...)
    calls[#calls + 1] = { ... }
  end, timer)
  send.push(1, 'a')
  send.push(2, 'b')
  send.push(3, 'c')
  eq({}, calls)
  eq(1, timer.started, 'one timer per burst')
  eq(50, timer.ms)
  -- vim.schedule_wrap: the flush runs on the next loop iteration
  timer:fire()
  vim.wait(1000, function()
    return #calls == 1
  end)
  eq({ { 3, 'c' } }, calls)
  send.push(4)
  eq(2, timer.started, 'a new burst starts a new window')
  send.flush()
  eq({ { 3, 'c' }, { 4 } }, calls)
  send.push(5)
  send.cancel()
  send.flush()
  eq(2, #calls, 'cancelled calls are dropped')
end)

it('coalescer works with a real timer', function()
  local got
  local send = util.coalescer(10, function(v)
    got = v
  end)
  for i = 1, 100 do
    send.push(i)
  end
  assert(
    vim.wait(2000, function()
      return got ~= nil
    end),
    'never flushed'
  )
  eq(100, got)
end)

it('errors say what happened', function()
  local err = {
    code = -32803,
    message = 'viewers may not comment',
    data = { errorCode = 'PERMISSION_DENIED', field = vim.NIL },
  }
  eq(
    'collab: comment failed: permission denied (PERMISSION_DENIED: viewers may not comment)',
    util.describe_error('comment', err)
  )
  eq(
    'collab: x failed: rate limited by the relay, try again in a minute (RATE_LIMITED: slow)',
    util.describe_error('x', { message = 'slow', data = { errorCode = 'RATE_LIMITED' } })
  )
  eq(
    'collab: x failed: odd (WEIRD)',
    util.describe_error('x', { message = 'odd', data = { errorCode = 'WEIRD' } })
  )
  eq('collab: x failed: boom', util.describe_error('x', { code = -32603, message = 'boom' }))
  assert(
    util
      .describe_error('join', { message = 'm', data = { errorCode = 'SESSION_ENDED' } })
      :find('session has ended')
  )
  assert(
    util
      .describe_error('join', { message = 'm', data = { errorCode = 'INVALID_TOKEN' } })
      :find('bad token')
  )
end)

it('@ completion finds names after an @', function()
  local names = { 'alice', 'Albert', 'bob' }
  eq({ 4, { 'Albert', 'alice' } }, { util.mention_matches('hi @al', names) })
  eq({ 1, { 'Albert', 'alice', 'bob' } }, { util.mention_matches('@', names) })
  eq({ nil, {} }, { util.mention_matches('mail me', names) })
end)

it('status line shows state, count and who follows whom', function()
  eq('', util.status_line(nil, {}))
  local state = {
    state = 'connected',
    sessionId = 's_1',
    participantCount = 3,
    you = 'bob',
    following = 'alice',
  }
  local people = {
    { userId = 'alice', name = 'alice', online = true },
    { userId = 'carol', name = 'carol', online = true, following = 'bob' },
    { userId = 'bob', name = 'bob', online = true, isYou = true },
  }
  eq(
    'collab: connected · 3 people · following alice · carol following you',
    util.status_line(state, people)
  )
  eq('collab: offline', util.status_line({ state = 'offline' }, {}))
end)

it('JSON nulls become nil', function()
  local t = util.denil({ a = vim.NIL, b = { c = vim.NIL, d = 1 }, e = { 1, 2 } })
  eq({ b = { d = 1 }, e = { 1, 2 } }, t)
  eq(nil, util.denil(vim.NIL))
end)
