-- wrk script: every request POSTs a pod with a name no other request (thread, run) used.
-- Usage: wrk ... -s create_pods.lua URL -- <run-prefix>
-- Names are <run-prefix>-<thread>-<counter>; the run prefix keeps successive wrk runs apart.

local thread_count = 0

function setup(thread)
  thread:set("thread_id", thread_count)
  thread_count = thread_count + 1
end

local prefix, counter
local head = '{"metadata":{"name":"'
local tail = '"},"spec":{"containers":[{"name":"c","image":"x"}]}}'
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  prefix = (args[1] or "p") .. "-" .. thread_id .. "-"
  counter = 0
end

function request()
  counter = counter + 1
  return wrk.format("POST", nil, headers, head .. prefix .. counter .. tail)
end
