-- collab.nvim: the :Collab command. Everything else loads on first use (require("collab")).
if vim.g.loaded_collab or vim.fn.has('nvim-0.10') ~= 1 then
  return
end
vim.g.loaded_collab = true

vim.api.nvim_create_user_command('Collab', function(opts)
  require('collab.commands').run(opts)
end, {
  nargs = '+',
  range = true,
  bang = true,
  desc = 'collab: join, chat, comment, follow… (see :help collab)',
  complete = function(arglead, cmdline)
    return require('collab.commands').complete(arglead, cmdline)
  end,
})
