-- A tiny test runner for the plugin's pure logic, run by headless Neovim:
--   nvim --headless -u NONE -i NONE -l tests/neovim/lua/runner.lua <plugin dir> <spec.lua>...
-- Prints one line per test and a closing "N passed, M failed"; exits 1 on any failure.
local plugin = assert(arg[1], 'usage: runner.lua <plugin dir> <spec>...')
vim.opt.runtimepath:prepend(plugin)

local passed, failed = 0, 0
local function it(name, fn)
  local ok, err = xpcall(fn, debug.traceback)
  if ok then
    passed = passed + 1
    print('ok   ' .. name)
  else
    failed = failed + 1
    print('FAIL ' .. name .. '\n' .. tostring(err))
  end
end

local function eq(expected, actual, what)
  if not vim.deep_equal(expected, actual) then
    error(
      ('%sexpected %s, got %s'):format(
        what and (what .. ': ') or '',
        vim.inspect(expected),
        vim.inspect(actual)
      ),
      2
    )
  end
end

for i = 2, #arg do
  local spec = assert(loadfile(arg[i]))
  spec(it, eq)
end
print(('%d passed, %d failed'):format(passed, failed))
os.exit(failed == 0 and passed > 0 and 0 or 1)
