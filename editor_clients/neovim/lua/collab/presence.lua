--- Your cursor, viewport and status, sent to the sidecar: coalesced on CursorMoved/CursorMovedI and
--- WinScrolled, "idle" after a while without moves, "away" while Neovim has lost focus.
local config = require('collab.config')
local util = require('collab.util')

local M = { status = 'active' }

local group = vim.api.nvim_create_augroup('collab.presence', { clear = true })
local cursor_sender, viewport_sender, idle_timer

local function client()
  local c = require('collab.client')
  return c, c.get()
end

--- The buffer of `win` if it is a document the sidecar knows, and its URI.
local function shared(win)
  local c, lsp = client()
  if not lsp then
    return nil
  end
  local buf = vim.api.nvim_win_get_buf(win)
  if not vim.lsp.buf_is_attached(buf, c.client_id) then
    return nil
  end
  return buf, vim.uri_from_bufnr(buf)
end

local function position(buf, row, col, encoding)
  local line = vim.api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ''
  return { line = row, character = util.byte_to_lsp(line, col, encoding) }
end

--- The collab/cursor params of a window: caret, and the visual selection if there is one.
function M.cursor_params(win)
  local buf, uri = shared(win)
  if not buf then
    return nil
  end
  local encoding = require('collab.client').encoding()
  local cursor = vim.api.nvim_win_get_cursor(win)
  local active = position(buf, cursor[1] - 1, cursor[2], encoding)
  local params = { uri = uri, position = active, selections = {} }
  local mode = vim.api.nvim_get_mode().mode:sub(1, 1)
  if win == vim.api.nvim_get_current_win() and (mode == 'v' or mode == 'V' or mode == '\22') then
    local v = vim.fn.getpos('v')
    local anchor = position(buf, v[2] - 1, v[3] - 1, encoding)
    if mode == 'V' then -- whole lines: from column 0 of the first to column 0 after the last
      local down = anchor.line <= active.line
      local first, last = down and anchor.line or active.line, down and active.line or anchor.line
      local a, b = { line = first, character = 0 }, { line = last + 1, character = 0 }
      anchor, active = down and a or b, down and b or a
    end
    params.selections = { { anchor = anchor, active = active } }
  end
  return params
end

function M.viewport_params(win)
  local buf, uri = shared(win)
  if not buf then
    return nil
  end
  local first, last = vim.fn.line('w0', win), vim.fn.line('w$', win)
  return {
    uri = uri,
    range = {
      start = { line = first - 1, character = 0 },
      ['end'] = { line = math.max(first, last) - 1, character = 0 },
    },
  }
end

function M.set_status(status)
  if status ~= M.status then
    M.status = status
    require('collab.client').notify('collab/status', { status = status })
  end
end

local function activity()
  if not M.focus_lost then
    M.set_status('active')
  end
  if idle_timer and config.options.idle_after > 0 then
    idle_timer:stop()
    idle_timer:start(
      config.options.idle_after,
      0,
      vim.schedule_wrap(function()
        M.set_status('idle')
      end)
    )
  end
end

function M.enable()
  cursor_sender = util.coalescer(config.options.cursor_delay, function(win)
    local params = vim.api.nvim_win_is_valid(win) and M.cursor_params(win)
    if params then
      require('collab.client').notify('collab/cursor', params)
    end
  end)
  viewport_sender = util.coalescer(config.options.viewport_delay, function(win)
    local params = vim.api.nvim_win_is_valid(win) and M.viewport_params(win)
    if params then
      require('collab.client').notify('collab/viewport', params)
    end
  end)
  idle_timer = idle_timer or vim.uv.new_timer()
  M.status = 'active'
  vim.api.nvim_clear_autocmds({ group = group })
  vim.api.nvim_create_autocmd({ 'CursorMoved', 'CursorMovedI', 'ModeChanged' }, {
    group = group,
    callback = function()
      local win = vim.api.nvim_get_current_win()
      require('collab.follow').on_cursor_moved(win)
      cursor_sender.push(win)
      activity()
    end,
  })
  vim.api.nvim_create_autocmd({ 'WinScrolled', 'WinResized', 'BufWinEnter' }, {
    group = group,
    callback = function()
      viewport_sender.push(vim.api.nvim_get_current_win())
    end,
  })
  vim.api.nvim_create_autocmd('LspAttach', {
    group = group,
    callback = function(ev)
      if ev.data and ev.data.client_id == require('collab.client').client_id then
        local win = vim.api.nvim_get_current_win()
        if vim.api.nvim_win_get_buf(win) == ev.buf then
          viewport_sender.push(win)
          cursor_sender.push(win)
        end
      end
    end,
  })
  if config.options.away_on_focus_lost then
    vim.api.nvim_create_autocmd('FocusLost', {
      group = group,
      callback = function()
        M.focus_lost = true
        M.set_status('away')
      end,
    })
    vim.api.nvim_create_autocmd('FocusGained', {
      group = group,
      callback = function()
        M.focus_lost = false
        activity()
      end,
    })
  end
end

--- Send the current window's cursor and viewport now (used after a join).
function M.send_now()
  local win = vim.api.nvim_get_current_win()
  if cursor_sender then
    cursor_sender.push(win)
    viewport_sender.push(win)
  end
end

return M
