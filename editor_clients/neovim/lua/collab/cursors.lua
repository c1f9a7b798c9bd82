--- Remote cursors as extmarks: a coloured mark at the caret with the name as virtual text, and
--- the selection highlighted. Extmarks move with your edits; positions are clamped, never strict.
local config = require('collab.config')
local util = require('collab.util')

local M = {}

M.ns = vim.api.nvim_create_namespace('collab.cursors')

--- Define CollabCursorN (the caret), CollabLabelN (the name) and CollabSelectionN for N = 1..12.
--- `default = true`: a colour scheme or the user's own :highlight wins.
function M.define_highlights()
  for n, color in ipairs(util.PALETTE) do
    local set = function(name, spec)
      spec.default = true
      vim.api.nvim_set_hl(0, name .. n, spec)
    end
    set('CollabCursor', { bg = color, fg = '#ffffff' })
    set('CollabLabel', { bg = color, fg = '#ffffff', bold = true })
    set('CollabSelection', { bg = color, blend = 60 })
  end
end

local function loaded_buffer(uri)
  local ok, fname = pcall(vim.uri_to_fname, uri)
  if not ok then
    return nil
  end
  local buf = vim.fn.bufnr(fname)
  if buf == -1 or not vim.api.nvim_buf_is_loaded(buf) then
    return nil
  end
  return buf
end

local function place(buf, row, col, opts)
  opts.strict = false
  pcall(vim.api.nvim_buf_set_extmark, buf, M.ns, row, col, opts)
end

--- Draw one notification: it replaces every cursor of that document.
---@param params {uri: string, cursors: table[]}
---@param encoding string
function M.draw(params, encoding)
  local buf = loaded_buffer(params.uri)
  if buf == nil then
    return
  end
  vim.api.nvim_buf_clear_namespace(buf, M.ns, 0, -1)
  local lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
  for _, cursor in ipairs(params.cursors or {}) do
    local slot = util.color_slot(cursor)
    local row, col = util.clamp(lines, cursor.position, encoding)
    local line = lines[row + 1] or ''
    local selection = cursor.selection
    if selection and selection.anchor and selection.active then
      local first, last = util.sorted(selection.anchor, selection.active)
      local srow, scol = util.clamp(lines, first, encoding)
      local erow, ecol = util.clamp(lines, last, encoding)
      if srow ~= erow or scol ~= ecol then
        place(buf, srow, scol, {
          end_row = erow,
          end_col = ecol,
          hl_group = 'CollabSelection' .. slot,
          priority = 150,
        })
      end
    end
    local width = #line > col and #vim.fn.strcharpart(line:sub(col + 1), 0, 1) or 0
    place(buf, row, col, {
      end_col = col + width,
      hl_group = 'CollabCursor' .. slot,
      virt_text = {
        { config.options.label_format:format(cursor.name or cursor.userId), 'CollabLabel' .. slot },
      },
      virt_text_pos = config.options.label_position,
      priority = 200,
    })
  end
end

function M.clear_all()
  for _, buf in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_valid(buf) then
      vim.api.nvim_buf_clear_namespace(buf, M.ns, 0, -1)
    end
  end
end

M.define_highlights()

return M
