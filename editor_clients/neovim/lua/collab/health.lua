--- :checkhealth collab — the sidecar (found, version), the relay (reachable), the token (valid).
local config = require('collab.config')

local M = {}

local health = vim.health

--- The sidecar's version: from a running client's serverInfo, else asked of its Python.
local function sidecar_version(cmd)
  local client = require('collab.client').get()
  if client and client.server_info and client.server_info.version then
    return client.server_info.version
  end
  local python = cmd[1]
  if not (#cmd >= 3 and cmd[2] == '-m') then
    -- a console script: its first line names the Python that runs it
    local path = vim.fn.exepath(cmd[1])
    local first = vim.fn.filereadable(path) == 1 and (vim.fn.readfile(path, '', 1)[1] or '') or ''
    python = first:match('^#!%s*(%S+python%S*)')
  end
  if not python then
    return nil
  end
  local ok, result = pcall(function()
    return vim
      .system(
        { python, '-c', "import importlib.metadata as m; print(m.version('collab-lsp'))" },
        { text = true }
      )
      :wait(10000)
  end)
  if ok and result.code == 0 then
    return vim.trim(result.stdout)
  end
end

--- Decode a JWT's claims (no signature check: only the relay can do that).
function M.jwt_claims(token)
  local payload = type(token) == 'string' and token:match('^[%w_-]+%.([%w_-]+)%.[%w_-]+$')
  if not payload then
    return nil
  end
  payload = payload:gsub('%-', '+'):gsub('_', '/')
  payload = payload .. string.rep('=', (4 - #payload % 4) % 4)
  local ok, claims = pcall(function()
    return vim.json.decode(vim.base64.decode(payload))
  end)
  return ok and type(claims) == 'table' and claims or nil
end

--- GET /healthz on the relay over a plain TCP socket; calls back with (ok, detail).
local function probe(url, done)
  local scheme, host, port = url:match('^(%a+)://([^/:]+):?(%d*)')
  if not scheme then
    return done(false, 'not a ws:// or wss:// URL')
  end
  port = tonumber(port) or ((scheme == 'wss' or scheme == 'https') and 443 or 80)
  local addr = vim.uv.getaddrinfo(host, nil, { socktype = 'stream' })
  if not addr or not addr[1] then
    return done(false, 'cannot resolve ' .. host)
  end
  local tcp = vim.uv.new_tcp()
  tcp:connect(addr[1].addr, port, function(err)
    if err then
      tcp:close()
      return done(false, err)
    end
    if scheme == 'wss' or scheme == 'https' then
      tcp:close()
      return done(true, 'TCP connection to ' .. host .. ':' .. port)
    end
    local response = ''
    tcp:read_start(function(_, chunk)
      if chunk then
        response = response .. chunk
      else
        tcp:close()
        local status = response:match('^HTTP/%d%.%d (%d+)')
        done(status == '200', status and ('/healthz answered ' .. status) or 'no HTTP answer')
      end
    end)
    tcp:write(('GET /healthz HTTP/1.0\r\nHost: %s\r\n\r\n'):format(host))
  end)
end

function M.check()
  health.start('collab: sidecar')
  local cmd = config.options.cmd
  if vim.fn.executable(cmd[1]) ~= 1 then
    health.error(('%q not found or not executable'):format(cmd[1]), {
      'Install it: pip install collab-lsp (or ./scripts/quickstart.sh)',
      'Or point setup({ cmd = { "/path/.venv/bin/python", "-m", "collab_lsp.sidecar" } }) at it',
    })
  else
    local version = sidecar_version(cmd)
    health.ok(
      ('%s (%s), version %s'):format(
        table.concat(cmd, ' '),
        vim.fn.exepath(cmd[1]),
        version or 'unknown'
      )
    )
  end

  health.start('collab: relay')
  local settings = config.sidecar_settings()
  local url = settings.relayUrl or vim.env.COLLAB_RELAY_URL
  local state = require('collab.client').state
  if not url then
    health.warn(
      'no relay URL: set relay_url in setup(), COLLAB_RELAY_URL, or use :Collab join <url>'
    )
  else
    url = url:gsub('^http', 'ws')
    local result
    probe(url, function(ok, detail)
      result = { ok = ok, detail = detail }
    end)
    vim.wait(5000, function()
      return result ~= nil
    end, 20)
    if result and result.ok then
      health.ok(('%s is reachable (%s)'):format(url, result.detail))
    else
      health.error(('%s is not reachable: %s'):format(url, result and result.detail or 'timed out'))
    end
  end

  health.start('collab: token')
  local token = settings.token or vim.env.COLLAB_TOKEN
  if state and state.state == 'connected' then
    health.ok(
      ('connected to "%s" as %s (%s): the relay accepted the token'):format(
        state.title or state.sessionId,
        state.you or '?',
        state.role or '?'
      )
    )
  elseif state and state.state == 'offline' and state.detail and state.detail:match('TOKEN') then
    health.error('the relay refused the token: ' .. state.detail)
  end
  if not token then
    if not (state and state.state == 'connected') then
      health.warn('no token: set token in setup() or COLLAB_TOKEN, or join with an invite link')
    end
    return
  end
  local claims = M.jwt_claims(token)
  if not claims then
    return health.error('the token is not a JWT')
  end
  if claims.exp and claims.exp < os.time() then
    health.error(('the token expired on %s'):format(os.date('!%Y-%m-%d %H:%M UTC', claims.exp)))
  else
    health.ok(
      ('token for %s%s%s'):format(
        claims.name or claims.sub or '?',
        claims.sid and (', session ' .. claims.sid) or ' (team token: can create sessions)',
        claims.exp and (', valid until ' .. os.date('!%Y-%m-%d %H:%M UTC', claims.exp)) or ''
      )
    )
  end
end

return M
