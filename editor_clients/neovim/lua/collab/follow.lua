--- Follow mode: show the followed person's viewport as it changes; stop when you move yourself.
local M = {
  following = nil, ---@type string? name of the person followed
  expected = nil, ---@type {win: integer, buf: integer, row: integer, col: integer}? where we put the cursor
  last = nil, ---@type string? the last location shown, to move only when it changed
}

local function client()
  return require('collab.client')
end

function M.start(who)
  M.win = vim.api.nvim_get_current_win() -- the window that follows
  client().command('follow', { userId = who }, function(result)
    if result then
      M.following, M.last, M.expected = result.name or who, nil, nil
      vim.notify(('collab: following %s'):format(M.following), vim.log.levels.INFO)
    end
  end, { label = 'follow ' .. who })
end

function M.stop(reason)
  local name = M.following
  M.following, M.expected, M.last = nil, nil, nil
  client().command('unfollow', {}, function(result)
    if result and name then
      vim.notify(('collab: stopped following %s%s'):format(name, reason or ''), vim.log.levels.INFO)
    end
  end, { label = 'unfollow' })
end

--- collab/follow: open the file and reveal the range, if the location changed.
function M.on_follow(params)
  if not M.following then
    M.following = params.name
  end
  local range = params.range or {}
  local first = (range.start or {}).line or ((params.line or 1) - 1)
  local key = table.concat(
    { params.uri or '', first, (range['end'] or {}).line or first, params.line or 0 },
    ':'
  )
  if key == M.last or not params.uri then
    return
  end
  M.last = key
  local fname = vim.uri_to_fname(params.uri)
  local win = M.win
  if not (win and vim.api.nvim_win_is_valid(win)) then
    win = vim.api.nvim_get_current_win()
    M.win = win
  end
  if vim.api.nvim_buf_get_name(vim.api.nvim_win_get_buf(win)) ~= fname then
    if vim.fn.bufnr(fname) == -1 and vim.fn.filereadable(fname) == 0 then
      vim.notify(
        ('collab: %s is in %s, which you do not have'):format(params.name, params.file),
        vim.log.levels.WARN
      )
      return
    end
    vim.api.nvim_win_call(win, function()
      vim.cmd('keepjumps edit ' .. vim.fn.fnameescape(fname))
    end)
  end
  local buf = vim.api.nvim_win_get_buf(win)
  local count = vim.api.nvim_buf_line_count(buf)
  local row = math.max(1, math.min((params.line or first + 1), count))
  local top = math.max(1, math.min(first + 1, count))
  vim.api.nvim_win_set_cursor(win, { row, 0 })
  vim.api.nvim_win_call(win, function()
    vim.fn.winrestview({ topline = top, lnum = row, col = 0 })
  end)
  M.expected = { win = win, buf = buf, row = row, col = 0 }
end

--- On CursorMoved: a move we did not make in the following window ends following (moving in
--- another window, the chat say, does not).
function M.on_cursor_moved(win)
  local e = M.expected
  if not M.following or not e or win ~= e.win then
    return
  end
  local cursor = vim.api.nvim_win_get_cursor(win)
  if
    win == e.win
    and vim.api.nvim_win_get_buf(win) == e.buf
    and cursor[1] == e.row
    and cursor[2] == e.col
  then
    return
  end
  M.stop(' (you moved)')
end

--- collab/sessionState: following ends when the sidecar says so.
function M.on_state(state)
  if state.state == 'offline' then
    M.following, M.expected, M.last = nil, nil, nil
  end
end

return M
