--- Pure logic with no editor state: colours, positions, coalescing, error text.
--- Everything here is unit-tested by tests/neovim/lua/test_util.lua.
local M = {}

--- Number of colours (and of CollabCursorN highlight groups): the sidecar's palette size.
M.COLORS = 12

--- The sidecar's default palette (docs/editor-protocol.md §10), indexed by colorIndex + 1.
M.PALETTE = {
  '#e6194b',
  '#3cb44b',
  '#4363d8',
  '#f58231',
  '#911eb4',
  '#42d4f4',
  '#f032e6',
  '#9a6324',
  '#469990',
  '#808000',
  '#000075',
  '#bfef45',
}

--- The colour index of a user id, exactly as the sidecar computes it:
--- the first 4 bytes of sha256(user_id), big-endian, modulo 12. Stable across sessions.
---@param user_id string
---@return integer 0..11
function M.color_index(user_id)
  return tonumber(vim.fn.sha256(user_id):sub(1, 8), 16) % M.COLORS
end

--- The highlight group suffix (1..12) for a cursor: the sidecar's colorIndex when it gave one.
---@param cursor {userId: string, colorIndex?: integer}
---@return integer
function M.color_slot(cursor)
  local index = tonumber(cursor.colorIndex)
  if index == nil or index < 0 or index >= M.COLORS then
    index = M.color_index(cursor.userId or '')
  end
  return math.floor(index) + 1
end

--- Width in `encoding` units of the UTF-8 character starting with byte `b`, and its byte length.
local function char_units(b, encoding)
  local len = b >= 0xF0 and 4 or b >= 0xE0 and 3 or b >= 0xC0 and 2 or 1
  if encoding == 'utf-16' then
    return (len == 4) and 2 or 1, len
  end
  return 1, len
end

--- An LSP character offset on `line` from a 0-based byte column.
---@param line string
---@param byte_col integer
---@param encoding string 'utf-8' | 'utf-16' | 'utf-32'
---@return integer
function M.byte_to_lsp(line, byte_col, encoding)
  byte_col = math.max(0, math.min(byte_col, #line))
  if encoding == 'utf-8' then
    return byte_col
  end
  local units, i = 0, 1
  while i <= byte_col do
    local width, len = char_units(line:byte(i), encoding)
    if i + len - 1 > byte_col then
      break -- byte_col points inside this character
    end
    units, i = units + width, i + len
  end
  return units
end

--- A 0-based byte column on `line` from an LSP character offset, clamped to the line.
--- An offset inside a multi-unit character rounds down to that character's start.
---@param line string
---@param character integer
---@param encoding string
---@return integer
function M.lsp_to_byte(line, character, encoding)
  character = math.max(0, character)
  if encoding == 'utf-8' then
    local col = math.min(character, #line)
    -- never split a UTF-8 sequence: back up over continuation bytes
    while col > 0 and col < #line and line:byte(col + 1) >= 0x80 and line:byte(col + 1) < 0xC0 do
      col = col - 1
    end
    return col
  end
  local units, i = 0, 1
  while i <= #line do
    local width, len = char_units(line:byte(i), encoding)
    if units + width > character then
      break
    end
    units, i = units + width, i + len
  end
  return i - 1
end

--- Clamp an LSP position to a buffer's lines; returns a 0-based row and byte column.
---@param lines string[] the buffer's lines
---@param pos {line: integer, character: integer}
---@param encoding string
---@return integer row, integer col
function M.clamp(lines, pos, encoding)
  if #lines == 0 then
    return 0, 0
  end
  local row = math.max(0, math.min(pos.line or 0, #lines - 1))
  return row, M.lsp_to_byte(lines[row + 1], pos.character or 0, encoding)
end

--- Order two positions (a selection may be backwards).
function M.sorted(a, b)
  if a.line < b.line or (a.line == b.line and a.character <= b.character) then
    return a, b
  end
  return b, a
end

--- A coalescing sender: calls within `delay_ms` of the first one collapse into a single call of
--- `fn` with the latest arguments, `delay_ms` after the first. The last call of a burst is
--- always delivered. `timer` defaults to a libuv timer (inject one to test).
---@param delay_ms integer
---@param fn function
---@return {push: fun(...), flush: fun(), cancel: fun()}
function M.coalescer(delay_ms, fn, timer)
  timer = timer or vim.uv.new_timer()
  local pending, args = false, nil
  local self = {}
  function self.flush()
    if pending then
      pending = false
      timer:stop()
      fn(unpack(args, 1, args.n))
    end
  end
  function self.push(...)
    args = { n = select('#', ...), ... }
    if not pending then
      pending = true
      timer:start(delay_ms, 0, vim.schedule_wrap(self.flush))
    end
  end
  function self.cancel()
    pending = false
    timer:stop()
  end
  return self
end

--- What the user is told about a command's error (a JSON-RPC error from the sidecar).
local ERRORS = {
  PERMISSION_DENIED = 'permission denied',
  RATE_LIMITED = 'rate limited by the relay, try again in a minute',
  SESSION_ENDED = 'the session has ended',
  INVALID_TOKEN = 'bad token',
  TOKEN_EXPIRED = 'token expired',
  AUTH_REQUIRED = 'bad token (none given)',
  NOT_JOINED = 'not in a session (:Collab join)',
  NOT_CONFIGURED = 'no relay URL or token configured',
  OFFLINE = 'not connected to the relay',
  REMOVED = 'you were removed from the session',
  INVITE_INVALID = 'the invite is invalid or used up',
  SESSION_NOT_FOUND = 'no such session',
  UNKNOWN_USER = 'no such participant',
  NOT_AUTHOR = 'only the author may do that',
}

---@param action string what was attempted, e.g. "comment"
---@param err {message?: string, code?: integer, data?: {errorCode?: string}}
---@return string
function M.describe_error(action, err)
  local code = type(err.data) == 'table' and err.data.errorCode or nil
  local what = code and ERRORS[code]
  local message = err.message or tostring(err)
  if what then
    return ('collab: %s failed: %s (%s: %s)'):format(action, what, code, message)
  elseif code then
    return ('collab: %s failed: %s (%s)'):format(action, message, code)
  end
  return ('collab: %s failed: %s'):format(action, message)
end

--- `@` completion: the column where the name starts (0-based byte) and matching names, or nil.
---@param before string the text of the line before the cursor
---@param names string[]
---@return integer?, string[]
function M.mention_matches(before, names)
  local prefix = before:match('@([%w_%.%-]*)$')
  if prefix == nil then
    return nil, {}
  end
  local matches = {}
  for _, name in ipairs(names) do
    if name:lower():sub(1, #prefix) == prefix:lower() then
      matches[#matches + 1] = name
    end
  end
  table.sort(matches)
  return #before - #prefix, matches
end

--- JSON nulls arrive as vim.NIL (truthy): turn them into nil, recursively, in place.
function M.denil(value)
  if type(value) ~= 'table' then
    return value ~= vim.NIL and value or nil
  end
  for k, v in pairs(value) do
    if v == vim.NIL then
      value[k] = nil
    elseif type(v) == 'table' then
      M.denil(v)
    end
  end
  return value
end

--- One line of the statusline component from a session state and participants.
---@param state table? collab/sessionState
---@param participants table[]
---@return string
function M.status_line(state, participants)
  if state == nil then
    return ''
  end
  local parts = { 'collab: ' .. (state.state or 'offline') }
  if state.state ~= 'offline' and state.sessionId then
    local count = state.participantCount or 0
    parts[#parts + 1] = ('%d %s'):format(count, count == 1 and 'person' or 'people')
  end
  local names, followers = {}, {}
  for _, p in ipairs(participants or {}) do
    names[p.userId] = p.name
  end
  if state.following then
    parts[#parts + 1] = 'following ' .. (names[state.following] or state.following)
  end
  for _, p in ipairs(participants or {}) do
    if not p.isYou and p.online and p.following and p.following == state.you then
      followers[#followers + 1] = p.name
    end
  end
  if #followers > 0 then
    parts[#parts + 1] = table.concat(followers, ', ') .. ' following you'
  end
  return table.concat(parts, ' · ')
end

return M
