--- Options of require("collab").setup(); every default is documented here and in doc/collab.txt.
local M = {}

M.defaults = {
  -- How to start the sidecar (a list, as for vim.lsp.start). Default: `collab-lsp` on PATH.
  -- From a virtual environment: { "/path/.venv/bin/python", "-m", "collab_lsp.sidecar" }.
  cmd = { 'collab-lsp' },
  -- Extra environment for the sidecar, e.g. { COLLAB_LOG_FILE = "/tmp/collab.log" }.
  cmd_env = nil,
  -- The relay, "ws://host:port" or "wss://host". nil: the sidecar reads COLLAB_RELAY_URL.
  relay_url = nil,
  -- A session or team token (a string, or a function returning one). nil: COLLAB_TOKEN.
  token = nil,
  -- Your display name; needed to join with an invite link. nil: the token's name.
  name = nil,
  -- The session to join with a team token. nil: the token's session.
  session_id = nil,
  -- Join at setup() when relay_url and token (or COLLAB_* variables) are set.
  auto_join = false,
  -- Workspace root sent to the sidecar. nil: the git top level of the current directory, else it.
  root_dir = nil,
  -- Milliseconds to coalesce cursor moves (the sidecar sends at most one per 50 ms anyway).
  cursor_delay = 50,
  -- Milliseconds to coalesce scrolling before a viewport is sent.
  viewport_delay = 150,
  -- Milliseconds without cursor moves before you are shown as idle (0: never).
  idle_after = 60000,
  -- Send "away" when Neovim loses focus (FocusLost), "active" when it comes back.
  away_on_focus_lost = true,
  -- Where a remote cursor's name is drawn: "eol", "inline", "right_align" or "overlay".
  label_position = 'eol',
  -- Text of the name label; %s is the name.
  label_format = ' %s',
}

M.options = vim.deepcopy(M.defaults)

function M.set(opts)
  M.options = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts or {})
  if type(M.options.cmd) == 'string' then
    M.options.cmd = { M.options.cmd }
  end
  return M.options
end

--- Settings for the sidecar (initializationOptions / collab.server.join), nil values dropped.
function M.sidecar_settings()
  local o = M.options
  local token = o.token
  if type(token) == 'function' then
    token = token()
  end
  return { relayUrl = o.relay_url, token = token, name = o.name, sessionId = o.session_id }
end

return M
