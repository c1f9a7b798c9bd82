--- The sidecar's vim.lsp client: starting it, the collab/* handlers, and running commands.
local config = require('collab.config')
local util = require('collab.util')

local M = {
  client_id = nil, ---@type integer?
  state = nil, ---@type table? the last collab/sessionState
  participants = {}, ---@type table[] the last collab/participants
  ready = false, -- initialize answered
  queue = {}, ---@type function[] actions waiting for initialize
}

local has_011 = vim.fn.has('nvim-0.11') == 1
local group = vim.api.nvim_create_augroup('collab.client', { clear = true })

--- Call a client method in the 0.11+ colon form, or the 0.10 dot form.
local function call(client, method, ...)
  if has_011 then
    return client[method](client, ...)
  end
  return client[method](...)
end

function M.get()
  return M.client_id and vim.lsp.get_client_by_id(M.client_id) or nil
end

--- Position encoding of the running client (utf-8 with Neovim).
function M.encoding()
  local client = M.get()
  return client and client.offset_encoding or 'utf-8'
end

function M.notify(method, params)
  local client = M.get()
  if client and M.ready then
    call(client, 'notify', method, params)
  end
end

local function redraw()
  vim.cmd('redrawstatus!')
  vim.api.nvim_exec_autocmds('User', { pattern = 'CollabStatus', modeline = false })
end

local LEVELS =
  { vim.log.levels.ERROR, vim.log.levels.WARN, vim.log.levels.INFO, vim.log.levels.DEBUG }

local handlers = {
  ['collab/sessionState'] = function(_, params)
    M.state = params
    require('collab.follow').on_state(params)
    if params.state == 'offline' then
      require('collab.cursors').clear_all()
    end
    redraw()
  end,
  ['collab/participants'] = function(_, params)
    M.participants = params.participants or {}
    redraw()
  end,
  ['collab/remoteCursors'] = function(_, params)
    require('collab.cursors').draw(params, M.encoding())
  end,
  ['collab/follow'] = function(_, params)
    require('collab.follow').on_follow(params)
  end,
  ['collab/chat'] = function(_, params)
    require('collab.chat').on_event(params)
  end,
  ['window/showMessage'] = function(_, params)
    local message = params.message
    if not message:match('^collab') then
      message = 'collab: ' .. message
    end
    vim.notify(message, LEVELS[params.type] or vim.log.levels.INFO)
  end,
}

-- Every handler gets its params with JSON nulls as nil.
M.handlers = {}
for method, fn in pairs(handlers) do
  M.handlers[method] = function(err, params, ctx)
    return fn(err, util.denil(params), ctx)
  end
end

--- Client-side commands: what code actions and code lenses run (docs/editor-protocol.md §11.4).
local function needs_text(name, prompt)
  return function(command, ctx)
    local args = vim.deepcopy((command.arguments or {})[1] or {})
    if args.text and args.text ~= '' then
      return M.command(name, args)
    end
    vim.ui.input({ prompt = prompt }, function(text)
      if text and text ~= '' then
        args.text = text
        M.command(name, args)
      end
    end)
  end
end

M.commands = {
  ['collab.server.reply'] = needs_text('reply', 'Reply: '),
  ['collab.server.editMessage'] = needs_text('editMessage', 'Edit: '),
  ['collab.server.listThreads'] = function(command)
    local args = (command.arguments or {})[1] or {}
    require('collab.comments').show_threads(args.threadIds or {})
  end,
}

local function root_dir()
  local root = config.options.root_dir
  if type(root) == 'function' then
    root = root()
  end
  if root then
    return vim.fs.normalize(root)
  end
  local cwd = vim.fn.getcwd()
  return vim.fs.root(cwd, '.git') or cwd
end

--- Attach a buffer that shows a file (the sidecar only knows documents the editor syncs).
function M.attach(buf)
  if not M.client_id or not vim.api.nvim_buf_is_valid(buf) then
    return
  end
  if vim.bo[buf].buftype ~= '' or vim.api.nvim_buf_get_name(buf) == '' then
    return
  end
  if not vim.lsp.buf_is_attached(buf, M.client_id) then
    vim.lsp.buf_attach_client(buf, M.client_id)
  end
end

--- Start the sidecar (once); `then_do(client)` runs when it has answered initialize.
function M.start(then_do)
  local client = M.get()
  if client then
    if then_do then
      if M.ready then
        then_do(client)
      else
        table.insert(M.queue, then_do)
      end
    end
    return client
  end
  local cmd = config.options.cmd
  if vim.fn.executable(cmd[1]) ~= 1 then
    vim.notify(
      ('collab: sidecar not found: %q is not executable (set `cmd` in require("collab").setup())'):format(
        cmd[1]
      ),
      vim.log.levels.ERROR
    )
    return nil
  end
  M.ready, M.queue = false, then_do and { then_do } or {}
  local lsp_config = {
    name = 'collab',
    cmd = cmd,
    cmd_env = config.options.cmd_env,
    root_dir = root_dir(),
    -- Settings travel with collab.server.join/createSession; only the name is needed early.
    init_options = { name = config.options.name },
    handlers = M.handlers,
    commands = M.commands,
    flags = { debounce_text_changes = 0 }, -- didChange before the cursor that depends on it
    on_init = function(c)
      M.ready = true
      local queue = M.queue
      M.queue = {}
      for _, fn in ipairs(queue) do
        fn(c)
      end
    end,
    on_exit = function(code)
      vim.schedule(function()
        M.client_id, M.ready, M.state, M.participants = nil, false, nil, {}
        require('collab.cursors').clear_all()
        redraw()
        if code ~= 0 then
          vim.notify(('collab: the sidecar exited with code %d'):format(code), vim.log.levels.ERROR)
        end
      end)
    end,
  }
  local id
  if has_011 then
    id = vim.lsp.start(lsp_config, { attach = false })
  else
    id = vim.lsp.start_client(lsp_config)
  end
  if not id then
    vim.notify('collab: could not start the sidecar', vim.log.levels.ERROR)
    return nil
  end
  M.client_id = id
  vim.api.nvim_clear_autocmds({ group = group })
  vim.api.nvim_create_autocmd({ 'BufEnter', 'BufReadPost', 'BufNewFile' }, {
    group = group,
    callback = function(ev)
      M.attach(ev.buf)
    end,
  })
  for _, buf in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(buf) then
      M.attach(buf)
    end
  end
  require('collab.presence').enable()
  return vim.lsp.get_client_by_id(id)
end

function M.stop()
  local client = M.get()
  if client then
    call(client, 'stop')
  end
end

--- Run collab.server.<name> with one argument object. `on_result(result)` gets the result; an
--- error is shown with vim.notify (unless `opts.silent`) and passed as `on_result(nil, err)`.
---@param name string
---@param args table?
---@param on_result fun(result: any, err: any)?
---@param opts {label?: string, silent?: boolean}?
function M.command(name, args, on_result, opts)
  opts = opts or {}
  M.start(function(client)
    local params = {
      command = 'collab.server.' .. name,
      arguments = { (args and next(args)) and args or vim.empty_dict() },
    }
    call(client, 'request', 'workspace/executeCommand', params, function(err, result)
      err, result = util.denil(err), util.denil(result)
      if err then
        if not opts.silent then
          vim.notify(util.describe_error(opts.label or name, err), vim.log.levels.ERROR)
        end
        if on_result then
          on_result(nil, err)
        end
        return
      end
      if type(result) == 'table' and result.status == 'pending' then
        vim.notify(
          ('collab: %s will be sent when the relay is back (%s)'):format(
            opts.label or name,
            result.state or 'offline'
          ),
          vim.log.levels.WARN
        )
      end
      if on_result then
        on_result(result)
      end
    end)
  end)
end

return M
