--- Comment threads: the sidecar publishes them as diagnostics (source "collab"); these are the
--- actions on them, and the thread float and quickfix list built from collab.server.listThreads.
local client = require('collab.client')

local M = {}

local function ask(prompt, text, fn)
  if text and text ~= '' then
    return fn(text)
  end
  vim.ui.input({ prompt = prompt }, function(input)
    if input and input ~= '' then
      fn(input)
    end
  end)
end

--- :Collab comment [text] on the current line, or on lines line1..line2 (a visual range).
---@param opts {text?: string, line1?: integer, line2?: integer, range?: integer}
function M.comment(opts)
  local buf = vim.api.nvim_get_current_buf()
  if vim.api.nvim_buf_get_name(buf) == '' then
    return vim.notify('collab: comment failed: this buffer is not a file', vim.log.levels.ERROR)
  end
  local args = { uri = vim.uri_from_bufnr(buf) }
  if opts.range and opts.range > 0 and opts.line2 > opts.line1 then
    local last = vim.api.nvim_buf_get_lines(buf, opts.line2 - 1, opts.line2, false)[1] or ''
    args.range = {
      start = { line = opts.line1 - 1, character = 0 },
      ['end'] = { line = opts.line2 - 1, character = #last },
    }
  else
    args.line = (opts.range and opts.range > 0 and opts.line1 or vim.fn.line('.')) - 1
  end
  ask('Comment: ', opts.text, function(text)
    args.text = text
    client.command('addComment', args, function(result)
      if result and result.status == 'acknowledged' then
        vim.notify('collab: comment added', vim.log.levels.INFO)
      end
    end, { label = 'comment' })
  end)
end

--- The collab threads on the cursor's line (pending comments have no thread id yet).
function M.threads_here()
  local buf, row = vim.api.nvim_get_current_buf(), vim.fn.line('.') - 1
  local ids = {}
  for _, d in ipairs(vim.diagnostic.get(buf)) do
    local first, last = d.lnum, d.end_lnum or d.lnum
    local data = d.user_data and d.user_data.lsp or {}
    local id = (data.data and data.data.threadId) or data.code or d.code
    if
      d.source == 'collab'
      and row >= first
      and row <= last
      and id
      and tostring(id):match('^m_')
    then
      if not vim.tbl_contains(ids, id) then
        ids[#ids + 1] = id
      end
    end
  end
  return ids
end

--- Run fn(threadId) for the thread on this line (asking which one when there are several).
local function with_thread(fn)
  local ids = M.threads_here()
  if #ids == 0 then
    return vim.notify('collab: no comment thread on this line', vim.log.levels.WARN)
  elseif #ids == 1 then
    return fn(ids[1])
  end
  vim.ui.select(ids, { prompt = 'Thread' }, function(id)
    if id then
      fn(id)
    end
  end)
end

function M.reply(text)
  with_thread(function(id)
    ask('Reply: ', text, function(input)
      client.command('reply', { threadId = id, text = input }, nil, { label = 'reply' })
    end)
  end)
end

function M.resolve()
  with_thread(function(id)
    client.command('resolve', { threadId = id }, function(result)
      if result then
        vim.notify('collab: thread resolved', vim.log.levels.INFO)
      end
    end, { label = 'resolve' })
  end)
end

function M.reopen(id)
  client.command('reopen', { threadId = id }, nil, { label = 'reopen' })
end

--- Markdown lines of threads, for the float.
function M.render(threads)
  local lines = {}
  for i, thread in ipairs(threads) do
    if i > 1 then
      vim.list_extend(lines, { '', '---', '' })
    end
    local title = ('**Thread** `%s:%s`%s'):format(
      thread.file or '?',
      thread.line or '?',
      thread.resolved and ' (resolved)' or ''
    )
    lines[#lines + 1] = title
    for _, c in ipairs(thread.comments or {}) do
      lines[#lines + 1] = ''
      lines[#lines + 1] = ('**%s** · %s%s'):format(
        c.username or c.user_id,
        (c.timestamp or ''):sub(1, 16):gsub('T', ' '),
        c.edited_at and ' (edited)' or ''
      )
      vim.list_extend(lines, vim.split(c.content or '', '\n'))
      local reactions = {}
      for emoji, users in pairs(c.reactions or {}) do
        reactions[#reactions + 1] = ('%s %d'):format(emoji, #users)
      end
      if #reactions > 0 then
        table.sort(reactions)
        lines[#lines + 1] = table.concat(reactions, '  ')
      end
    end
  end
  return lines
end

--- A floating window with whole threads.
function M.show_threads(ids)
  client.command('listThreads', { threadIds = ids }, function(result)
    if not result or #result.threads == 0 then
      return vim.notify('collab: no such thread', vim.log.levels.WARN)
    end
    local _, win = vim.lsp.util.open_floating_preview(M.render(result.threads), 'markdown', {
      border = 'rounded',
      focus_id = 'collab.thread',
      title = ' collab thread ',
    })
    M.float = win
  end, { label = 'thread' })
end

--- :Collab thread: the thread(s) on this line.
function M.thread()
  local ids = M.threads_here()
  if #ids == 0 then
    return vim.notify('collab: no comment thread on this line', vim.log.levels.WARN)
  end
  M.show_threads(ids)
end

--- Quickfix items of threads.
function M.qf_items(threads)
  local items = {}
  for _, t in ipairs(threads) do
    local first = (t.comments or {})[1] or {}
    local replies = #(t.comments or {}) - 1
    local text = ('%s%s: %s'):format(
      t.resolved and '[resolved] ' or '',
      first.username or '?',
      vim.split(first.content or '', '\n')[1]
    )
    if replies > 0 then
      text = text .. (' (%d %s)'):format(replies, replies == 1 and 'reply' or 'replies')
    end
    items[#items + 1] = {
      filename = t.uri and vim.uri_to_fname(t.uri) or t.file,
      lnum = t.currentLine and t.currentLine + 1 or t.line or 1,
      text = text,
      type = 'I',
      user_data = { threadId = t.threadId },
    }
  end
  return items
end

--- :Collab comments[!]: every open thread (with !, resolved ones too) into the quickfix list.
function M.to_quickfix(include_resolved)
  client.command('listThreads', { includeResolved = include_resolved or false }, function(result)
    if not result then
      return
    end
    vim.fn.setqflist({}, ' ', { title = 'collab comments', items = M.qf_items(result.threads) })
    vim.cmd('botright copen')
  end, { label = 'comments' })
end

return M
