--- collab.nvim: real-time collaboration through the collab-lsp sidecar (see :help collab).
local config = require('collab.config')

local M = {}

--- Configure the plugin; see `:help collab-setup` and lua/collab/config.lua for every option.
---@param opts table?
function M.setup(opts)
  config.set(opts)
  require('collab.cursors').define_highlights()
  vim.api.nvim_create_autocmd('ColorScheme', {
    group = vim.api.nvim_create_augroup('collab.highlights', { clear = true }),
    callback = require('collab.cursors').define_highlights,
  })
  if config.options.auto_join then
    M.join()
  end
end

--- Join a session: `target` is a relay URL or an invite link (collab://join?…); nil: the settings.
---@param target string?
---@param extra table? more join arguments (token, name, sessionId)
function M.join(target, extra)
  local args = vim.tbl_extend('force', config.sidecar_settings(), extra or {})
  if target and target:match('^%a[%w+.-]*://join') then
    args.invite, args.relayUrl, args.token = target, nil, nil
  elseif target then
    args.relayUrl = target
  end
  require('collab.client').command('join', args, function(state)
    if state and state.state == 'connected' then
      vim.notify(
        ('collab: joined "%s" as %s'):format(state.title or state.sessionId, state.role or '?'),
        vim.log.levels.INFO
      )
      require('collab.presence').send_now()
    end
  end, { label = 'join', silent = true }) -- the sidecar itself shows why a join was refused
end

function M.leave()
  if require('collab.client').get() then
    require('collab.client').command('leave', {}, function()
      vim.notify('collab: left the session', vim.log.levels.INFO)
    end)
  end
end

--- Create a session (needs a team token) and join it as its host.
function M.start(title)
  local settings = config.sidecar_settings()
  local args = {
    title = (title and title ~= '') and title or vim.fs.basename(vim.fn.getcwd()),
    relayUrl = settings.relayUrl,
    token = settings.token,
  }
  require('collab.client').command('createSession', args, function(state)
    if state then
      vim.notify(
        ('collab: session "%s" started; :Collab invite to invite people'):format(state.title or ''),
        vim.log.levels.INFO
      )
      require('collab.presence').send_now()
    end
  end, { label = 'start' })
end

--- Statusline component: connection state, participant count and who follows whom.
---@return string
function M.status()
  local client = require('collab.client')
  return require('collab.util').status_line(client.state, client.participants)
end

return M
