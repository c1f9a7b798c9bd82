--- The chat buffer: the history, new messages as they arrive, and a prompt line to send
--- (a 'buftype=prompt' buffer). `@` completes names; `r` on a message reacts, `e` edits, `dd` deletes.
local client = require('collab.client')
local util = require('collab.util')

local M = {
  messages = {}, ---@type table[] chat messages, oldest first
  buf = nil, ---@type integer?
  line_ids = {}, ---@type table<integer, string> buffer line (1-based) -> message id
}

local ns = vim.api.nvim_create_namespace('collab.chat')

--- Lines of one message, and whether it is a reply.
function M.format(message)
  local time = (message.timestamp or ''):sub(12, 16)
  local text = message.deleted and '(deleted)' or (message.content or '')
  local parts = vim.split(text, '\n')
  local head = ('%s%s %s: %s%s'):format(
    message.parent_id and '  ↳ ' or '',
    time,
    message.username or message.user_id or '?',
    parts[1],
    message.edited_at and not message.deleted and ' (edited)' or ''
  )
  local lines = { head }
  for i = 2, #parts do
    lines[#lines + 1] = '      ' .. parts[i]
  end
  local reactions = {}
  for emoji, users in pairs(message.reactions or {}) do
    if #users > 0 then
      reactions[#reactions + 1] = ('%s %d'):format(emoji, #users)
    end
  end
  if #reactions > 0 then
    table.sort(reactions)
    lines[#lines + 1] = '      ' .. table.concat(reactions, '  ')
  end
  return lines
end

function M.render()
  local buf = M.buf
  if not buf or not vim.api.nvim_buf_is_valid(buf) then
    return
  end
  local lines, ids = {}, {}
  for _, message in ipairs(M.messages) do
    for _, line in ipairs(M.format(message)) do
      lines[#lines + 1] = line
      ids[#lines] = message.id
    end
  end
  M.line_ids = ids
  local count = vim.api.nvim_buf_line_count(buf)
  -- everything above the prompt line (the last one) is the transcript
  vim.api.nvim_buf_set_lines(buf, 0, count - 1, false, lines)
  vim.api.nvim_buf_clear_namespace(buf, ns, 0, -1)
  for i, id in pairs(ids) do
    local message = M.by_id(id)
    local name_end = lines[i]:find(':', 1, true)
    if message and name_end and lines[i]:sub(1, 1) ~= ' ' then
      local slot = util.color_slot({ userId = message.user_id })
      pcall(
        vim.api.nvim_buf_set_extmark,
        buf,
        ns,
        i - 1,
        0,
        { end_col = name_end - 1, hl_group = 'CollabLabel' .. slot }
      )
    end
  end
  for _, win in ipairs(vim.fn.win_findbuf(buf)) do
    if vim.api.nvim_get_current_win() ~= win or vim.api.nvim_get_mode().mode ~= 'i' then
      vim.api.nvim_win_set_cursor(win, { vim.api.nvim_buf_line_count(buf), 0 })
    end
  end
end

function M.by_id(id)
  for _, message in ipairs(M.messages) do
    if message.id == id then
      return message
    end
  end
end

--- collab/chat events (docs/editor-protocol.md §6.5).
function M.on_event(params)
  local kind = params.kind
  if kind == 'history' then
    M.messages = params.messages or {}
  elseif kind == 'new' then
    if not M.by_id(params.message.id) then
      table.insert(M.messages, params.message)
    end
  elseif kind == 'edited' or kind == 'deleted' or kind == 'reactions' then
    for i, message in ipairs(M.messages) do
      if message.id == params.message.id then
        M.messages[i] = params.message
      end
    end
  elseif kind == 'mention' then
    local m = params.mention
    vim.notify(
      ('collab: %s mentioned you: %s'):format(m.by_username or m.by, m.content),
      vim.log.levels.INFO
    )
    return
  elseif kind == 'focus' then
    require('collab.comments').show_threads({ params.threadId })
    return
  end
  M.render()
end

function M.send(text)
  if text and vim.trim(text) ~= '' then
    client.command('sendChat', { text = text }, nil, { label = 'chat' })
  end
end

--- The message under the cursor in the chat buffer.
function M.message_here()
  return M.line_ids[vim.fn.line('.')]
end

function M.react(emoji)
  local id = M.message_here()
  if not id then
    return vim.notify('collab: put the cursor on a chat message to react', vim.log.levels.WARN)
  end
  local function send(e)
    if e and e ~= '' then
      client.command('react', { messageId = id, emoji = e }, nil, { label = 'react' })
    end
  end
  if emoji then
    return send(emoji)
  end
  vim.ui.input({ prompt = 'React with: ' }, send)
end

--- `@` completion of participants' names (an 'omnifunc', also triggered on typing `@`).
function M.omnifunc(findstart, base)
  local line, col = vim.api.nvim_get_current_line(), vim.fn.col('.') - 1
  local start, matches = util.mention_matches(line:sub(1, col), M.names())
  if findstart == 1 then
    return start or -3
  end
  return vim.tbl_filter(function(name)
    return name:lower():sub(1, #base) == base:lower()
  end, matches)
end

function M.names()
  local names = {}
  for _, p in ipairs(client.participants) do
    if not p.isYou then
      names[#names + 1] = p.name
    end
  end
  return names
end

--- Open (or show) the chat buffer in a split.
function M.open()
  if not M.buf or not vim.api.nvim_buf_is_valid(M.buf) then
    local buf = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_buf_set_name(buf, 'collab://chat')
    vim.bo[buf].buftype = 'prompt'
    vim.bo[buf].bufhidden = 'hide'
    vim.bo[buf].filetype = 'collabchat'
    vim.bo[buf].omnifunc = "v:lua.require'collab.chat'.omnifunc"
    vim.fn.prompt_setprompt(buf, '> ')
    vim.fn.prompt_setcallback(buf, M.send)
    vim.keymap.set('n', 'r', function()
      M.react()
    end, { buffer = buf, desc = 'collab: react' })
    vim.keymap.set('n', 'e', function()
      local id = M.message_here()
      if id then
        vim.ui.input({ prompt = 'Edit: ', default = (M.by_id(id) or {}).content }, function(text)
          if text and text ~= '' then
            client.command('editMessage', { messageId = id, text = text }, nil, { label = 'edit' })
          end
        end)
      end
    end, { buffer = buf, desc = 'collab: edit message' })
    vim.keymap.set('n', 'dd', function()
      local id = M.message_here()
      if id then
        client.command('deleteMessage', { messageId = id }, nil, { label = 'delete' })
      end
    end, { buffer = buf, desc = 'collab: delete message' })
    vim.api.nvim_create_autocmd('InsertCharPre', {
      buffer = buf,
      callback = function()
        if vim.v.char == '@' and #M.names() > 0 then
          vim.schedule(function()
            if vim.api.nvim_get_mode().mode == 'i' then
              local col = vim.fn.col('.')
              vim.fn.complete(col, M.names())
            end
          end)
        end
      end,
    })
    M.buf = buf
  end
  local wins = vim.fn.win_findbuf(M.buf)
  if #wins > 0 then
    vim.api.nvim_set_current_win(wins[1])
  else
    vim.cmd('botright 12split')
    vim.api.nvim_win_set_buf(0, M.buf)
  end
  M.render()
  vim.cmd('startinsert!')
end

return M
