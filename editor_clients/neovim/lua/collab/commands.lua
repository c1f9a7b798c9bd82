--- :Collab subcommands and their completion.
local client = require('collab.client')

local M = {}

local ROLES = { 'host', 'editor', 'viewer' }

local function names()
  local list = {}
  for _, p in ipairs(client.participants) do
    if not p.isYou then
      list[#list + 1] = p.name
    end
  end
  return list
end

local function need(value, usage)
  if not value or value == '' then
    vim.notify('collab: usage: :Collab ' .. usage, vim.log.levels.ERROR)
    return false
  end
  return true
end

local function who()
  client.command('listParticipants', {}, function(result)
    if not result then
      return
    end
    local lines = { 'collab: participants' }
    for _, p in ipairs(result.participants) do
      local where = p.file and (' %s:%d'):format(p.file, p.line or 1) or ''
      lines[#lines + 1] = ('  %s%s%s (%s, %s)%s%s'):format(
        p.kind == 'agent' and '🤖 ' or '',
        p.name,
        p.isYou and ' [you]' or '',
        p.role,
        p.online and p.status or 'offline',
        where,
        p.following and ('  following ' .. p.following) or ''
      )
    end
    vim.notify(table.concat(lines, '\n'), vim.log.levels.INFO)
  end, { label = 'who' })
end

--- name -> {run = fun(args: string[], opts), complete = fun(arg_index): string[]}
M.subcommands = {
  join = {
    run = function(a)
      require('collab').join(a[1])
    end,
  },
  leave = {
    run = function()
      require('collab').leave()
    end,
  },
  start = {
    run = function(a)
      require('collab').start(table.concat(a, ' '))
    end,
  },
  who = { run = who },
  follow = {
    run = function(a)
      if need(a[1], 'follow <name>') then
        require('collab.follow').start(a[1])
      end
    end,
    complete = names,
  },
  unfollow = {
    run = function()
      require('collab.follow').stop()
    end,
  },
  comment = {
    run = function(a, opts)
      require('collab.comments').comment({
        text = table.concat(a, ' '),
        line1 = opts.line1,
        line2 = opts.line2,
        range = opts.range,
      })
    end,
  },
  reply = {
    run = function(a)
      require('collab.comments').reply(table.concat(a, ' '))
    end,
  },
  resolve = {
    run = function()
      require('collab.comments').resolve()
    end,
  },
  thread = {
    run = function()
      require('collab.comments').thread()
    end,
  },
  comments = {
    run = function(_, opts)
      require('collab.comments').to_quickfix(opts.bang)
    end,
  },
  chat = {
    run = function()
      require('collab.chat').open()
    end,
  },
  react = {
    run = function(a)
      require('collab.chat').react(a[1])
    end,
  },
  invite = {
    run = function(a)
      client.command('invite', { role = a[1] or 'editor' }, function(result)
        if result then
          vim.fn.setreg('"', result.link)
          pcall(vim.fn.setreg, '+', result.link)
          vim.notify(
            ('collab: %s invite (copied): %s'):format(result.role, result.link),
            vim.log.levels.INFO
          )
        end
      end, { label = 'invite' })
    end,
    complete = function()
      return { 'editor', 'viewer' }
    end,
  },
  kick = {
    run = function(a)
      if need(a[1], 'kick <name>') then
        client.command('remove', { userId = a[1] }, function(result)
          if result then
            vim.notify(('collab: %s was removed'):format(a[1]), vim.log.levels.INFO)
          end
        end, { label = 'kick ' .. a[1] })
      end
    end,
    complete = names,
  },
  role = {
    run = function(a)
      if need(a[1] and a[2], 'role <name> <host|editor|viewer>') then
        client.command('changeRole', { userId = a[1], role = a[2] }, nil, { label = 'role' })
      end
    end,
    complete = function(index)
      return index == 1 and names() or ROLES
    end,
  },
  ['end'] = {
    run = function(_, opts)
      if opts.bang or vim.fn.confirm('End the session for everyone?', '&Yes\n&No', 2) == 1 then
        client.command('endSession', {}, nil, { label = 'end' })
      end
    end,
  },
  status = {
    run = function()
      vim.notify(
        require('collab').status() ~= '' and require('collab').status() or 'collab: not started',
        vim.log.levels.INFO
      )
    end,
  },
}

function M.run(opts)
  local args = vim.split(vim.trim(opts.args), '%s+', { trimempty = true })
  local name = table.remove(args, 1)
  local sub = name and M.subcommands[name]
  if not sub then
    return vim.notify(
      'collab: unknown subcommand ' .. (name or '') .. '; try :Collab <Tab>',
      vim.log.levels.ERROR
    )
  end
  sub.run(args, opts)
end

function M.complete(arglead, cmdline)
  local words = vim.split((cmdline:gsub('^%S+%s*', '')), '%s+')
  local candidates
  if #words <= 1 then
    candidates = vim.tbl_keys(M.subcommands)
  else
    local sub = M.subcommands[words[1]]
    candidates = sub and sub.complete and sub.complete(#words - 1) or {}
  end
  table.sort(candidates)
  return vim.tbl_filter(function(c)
    return c:sub(1, #arglead) == arglead
  end, candidates)
end

return M
