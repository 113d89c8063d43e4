-- armbus.lua: Wireshark dissector for armbus traces (pcapng, link type 147 = LINKTYPE_USER0).
--
-- Usage:  wireshark -X lua_script:docs/wireshark/armbus.lua trace.pcapng
--         tshark -X lua_script:docs/wireshark/armbus.lua -r trace.pcapng -V
-- or copy this file into your personal Lua plugins folder (Help > About > Folders).
--
-- Each packet of an armbus trace is a chunk of raw bytes seen on one direction of one link (interface name
-- "<link>:<direction>"). A chunk may hold several frames, garbage, or part of a frame (a frame split over two
-- reads shows as a partial piece in both packets; the Python decoder reassembles them, this dissector does not).
-- Every 0x00-delimited piece is COBS-decoded into its own data source ("armbus frame N") and dissected: link
-- header, network header (DATA), CRC-16/CCITT-FALSE check, and the message payload fields. A payload that does
-- not fit its message type (the rules of bus/messages.py and bus/cycle.py: a DecodeError LENGTH there) gets the
-- field armbus.payload_error and an expert item of the MALFORMED group, as a line error does.
-- Wire format: docs/protocol.md and bus/wire.py; payload layouts: bus/messages.py, bus/cycle.py.

local armbus = Proto("armbus", "armbus serial bus")

local KINDS = { [0] = "DATA", [1] = "ACK", [2] = "RESET", [3] = "RESET_ACK" }
local TYPES = {
    [0x01] = "PING", [0x02] = "ENUMERATE", [0x03] = "READ", [0x04] = "WRITE", [0x05] = "SYNC_WRITE",
    [0x06] = "SYNC_READ", [0x07] = "SET_GOAL", [0x08] = "TORQUE", [0x09] = "ESTOP", [0x0A] = "HEARTBEAT",
    [0x0B] = "REBOOT", [0x0C] = "CYCLE", [0x40] = "STATE", [0x41] = "FAULT", [0x42] = "UNDELIVERABLE", [0x80] = "ERROR",
    [0x81] = "PING_REPLY", [0x82] = "ENUMERATE_REPLY", [0x83] = "READ_REPLY", [0x84] = "WRITE_REPLY",
    [0x86] = "SYNC_READ_REPLY", [0x8C] = "CYCLE_REPLY",
}
local GOAL_MODES = { [0] = "no goals", [1] = "POSITION", [2] = "VELOCITY", [3] = "CURRENT" }
-- A CYCLE_REPLY record's result nibbles (bus/cycle.py): 0, an ErrorKind, or 0xF (goal: this cycle had none).
local OUTCOMES = { [0] = "ok", [1] = "INSTRUCTION", [2] = "CRC", [3] = "RANGE", [4] = "LENGTH", [5] = "ACCESS",
    [6] = "LIMIT", [7] = "BUSY", [0xF] = "no goal" }
local ADDRESSES = { [0] = "HOST", [0xFE] = "UNASSIGNED", [0xFF] = "BROADCAST" }
for a = 1, 0xFD do ADDRESSES[a] = "joint " .. a end
local LINE_ERRORS = { "CRC", "COBS", "OVERSIZE", "TRUNCATED", "VERSION", "KIND", "TYPE", "LENGTH" }
-- Sizes from bus/wire.py.
local CONTROL_FRAME_SIZE = 5
local DATA_OVERHEAD = 12
local HEADER_SIZE = 10
local MAX_ENCODED = 270
local CYCLE_GOAL_SIZE = 4
local CYCLE_RECORD_HEAD = 5

local f = armbus.fields
f.version = ProtoField.uint8("armbus.version", "Version", base.DEC)
f.kind = ProtoField.uint8("armbus.kind", "Frame kind", base.DEC, KINDS)
f.seq = ProtoField.uint8("armbus.seq", "Sequence", base.DEC)
f.flags = ProtoField.uint8("armbus.flags", "Flags", base.HEX)
f.retransmit = ProtoField.bool("armbus.retransmit", "Retransmit", 8, nil, 0x01)
f.src = ProtoField.uint8("armbus.src", "Source", base.DEC, ADDRESSES)
f.dst = ProtoField.uint8("armbus.dst", "Destination", base.DEC, ADDRESSES)
f.type = ProtoField.uint8("armbus.type", "Message type", base.HEX, TYPES)
f.msg_id = ProtoField.uint16("armbus.msg_id", "Message id", base.DEC)
f.ttl = ProtoField.uint8("armbus.ttl", "TTL", base.DEC)
f.length = ProtoField.uint8("armbus.length", "Payload length", base.DEC)
f.payload = ProtoField.bytes("armbus.payload", "Payload")
f.crc = ProtoField.uint16("armbus.crc", "CRC-16", base.HEX)
f.crc_ok = ProtoField.bool("armbus.crc_ok", "CRC good")
f.error = ProtoField.string("armbus.error", "Line error")
f.encoded = ProtoField.bytes("armbus.encoded", "COBS-encoded frame")
f.payload_error = ProtoField.string("armbus.payload_error", "Payload error")

local e_crc = ProtoExpert.new("armbus.crc_bad", "CRC mismatch", expert.group.CHECKSUM, expert.severity.ERROR)
local e_line = ProtoExpert.new("armbus.line_error", "Line error", expert.group.MALFORMED, expert.severity.WARN)
local e_partial = ProtoExpert.new("armbus.partial", "Partial frame (no 0x00 delimiter in this chunk)",
    expert.group.REASSEMBLE, expert.severity.NOTE)
local e_payload = ProtoExpert.new("armbus.payload_bad", "Payload does not fit its message type",
    expert.group.MALFORMED, expert.severity.WARN)
armbus.experts = { e_crc, e_line, e_partial, e_payload }

-- Payload layouts (little-endian): field name, size in bytes, signed, value names. Fields are
-- armbus.<type>.<name>. The types in FIXED have exactly this payload; the others continue with data or records.
local LAYOUTS = {
    PING = {},
    REBOOT = {},
    PING_REPLY = { { "model", 2 }, { "fw_major", 1 }, { "fw_minor", 1 }, { "serial", 4 }, { "address", 1 } },
    READ = { { "reg", 2 }, { "length", 1 } },
    WRITE_REPLY = { { "reg", 2 }, { "length", 1 } },
    SET_GOAL = { { "mode", 1, false, GOAL_MODES }, { "value", 4, true } },
    TORQUE = { { "enable", 1 } },
    ESTOP = { { "reason", 1 } },
    HEARTBEAT = { { "host_time_ms", 4 } },
    STATE = { { "status", 1 }, { "position", 4, true }, { "velocity", 4, true }, { "current", 2, true },
        { "temperature", 2, true }, { "voltage", 2 } },
    FAULT = { { "code", 1 }, { "active", 1 }, { "value", 4, true } },
    UNDELIVERABLE = { { "reporter", 1 }, { "next_hop", 1 }, { "orig_src", 1 }, { "orig_dst", 1 },
        { "orig_type", 1 }, { "orig_msg_id", 2 }, { "reason", 1 } },
    ERROR = { { "orig_type", 1 }, { "kind", 1 }, { "detail", 2 } },
    -- variable layouts: fixed head, then data or records (handled in dissect_payload)
    READ_REPLY = { { "reg", 2 } },
    WRITE = { { "reg", 2 } },
    SYNC_WRITE = { { "reg", 2 }, { "slice_len", 1 }, { "first", 1 } },
    SYNC_READ = { { "reg", 2 }, { "length", 1 } },
    SYNC_READ_REPLY = { { "reg", 2 }, { "length", 1 } },
    ENUMERATE = { { "count", 1 } },
    ENUMERATE_REPLY = { { "count", 1 } },
    CYCLE = { { "reg", 2 }, { "length", 1 }, { "mode", 1, false, GOAL_MODES }, { "first", 1 } },
    CYCLE_REPLY = { { "reg", 2 }, { "length", 1 } },
}
local FIXED = { PING = true, REBOOT = true, PING_REPLY = true, READ = true, WRITE_REPLY = true, SET_GOAL = true,
    TORQUE = true, ESTOP = true, HEARTBEAT = true, STATE = true, FAULT = true, UNDELIVERABLE = true, ERROR = true }
local PF = {}
local INT_FIELD = { [1] = { ProtoField.uint8, ProtoField.int8 }, [2] = { ProtoField.uint16, ProtoField.int16 },
    [4] = { ProtoField.uint32, ProtoField.int32 } }
for tname, layout in pairs(LAYOUTS) do
    PF[tname] = {}
    for _, spec in ipairs(layout) do
        local name, size, signed, names = spec[1], spec[2], spec[3], spec[4]
        local ctor = INT_FIELD[size][signed and 2 or 1]
        local abbr = "armbus." .. tname:lower() .. "." .. name
        local pf = ctor(abbr, name, base.DEC, names)
        PF[tname][name] = pf
        f[tname:lower() .. "_" .. name] = pf
    end
end
f.data = ProtoField.bytes("armbus.data", "Data")
f.rec_address = ProtoField.uint8("armbus.record.address", "Address", base.DEC)
f.rec_status = ProtoField.uint8("armbus.record.status", "Status", base.HEX)
f.rec_model = ProtoField.uint16("armbus.record.model", "Model", base.DEC)
f.rec_serial = ProtoField.uint32("armbus.record.serial", "Serial", base.DEC)
f.goal = ProtoField.int32("armbus.cycle.goal", "Goal", base.DEC)
f.rec_result = ProtoField.uint8("armbus.record.result", "Result", base.HEX)
f.rec_read_result = ProtoField.uint8("armbus.record.read_result", "Read outcome", base.DEC, OUTCOMES, 0xF0)
f.rec_goal_result = ProtoField.uint8("armbus.record.goal_result", "Goal outcome", base.DEC, OUTCOMES, 0x0F)
f.rec_age = ProtoField.uint16("armbus.record.age_us", "Sample age (us)", base.DEC)

-- CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, not reflected, no final XOR (bus/crc.py).
local CRC_TABLE = {}
for i = 0, 255 do
    local c = bit32.lshift(i, 8)
    for _ = 1, 8 do
        if bit32.band(c, 0x8000) ~= 0 then
            c = bit32.band(bit32.bxor(bit32.lshift(c, 1), 0x1021), 0xFFFF)
        else
            c = bit32.band(bit32.lshift(c, 1), 0xFFFF)
        end
    end
    CRC_TABLE[i] = c
end

local function crc16(ba, n)
    local crc = 0xFFFF
    for i = 0, n - 1 do
        local idx = bit32.band(bit32.bxor(bit32.rshift(crc, 8), ba:get_index(i)), 0xFF)
        crc = bit32.band(bit32.bxor(bit32.lshift(crc, 8), CRC_TABLE[idx]), 0xFFFF)
    end
    return crc
end

-- COBS decode of tvb bytes [off, off+len): a ByteArray, or nil and a reason.
local function cobs_decode(tvb, off, len)
    local out = ByteArray.new()
    local i = 0
    while i < len do
        local code = tvb(off + i, 1):uint()
        if code == 0 or i + code > len then return nil, "COBS" end
        local n = code - 1
        if n > 0 then out:append(tvb(off + i + 1, n):bytes()) end
        i = i + code
        if code < 0xFF and i < len then out:append(ByteArray.new("00")) end
    end
    return out
end

local function add_fixed(tree, tname, dtvb, pos, limit)
    for _, spec in ipairs(LAYOUTS[tname] or {}) do
        local name, size = spec[1], spec[2]
        if pos + size > limit then return pos, false end
        tree:add_le(PF[tname][name], dtvb(pos, size))
        pos = pos + size
    end
    return pos, true
end

-- Dissect a payload's fields; returns nil, or why the payload does not fit its type (bus/messages.py's rules).
local function dissect_payload(tree, tname, dtvb, pos, limit)
    if not tname then return nil end
    local p, ok = add_fixed(tree, tname, dtvb, pos, limit)
    if not ok then return tname .. " payload too short" end
    if FIXED[tname] then
        if p < limit then return tname .. " payload has " .. (limit - p) .. " bytes too many" end
    elseif tname == "READ_REPLY" or tname == "WRITE" then
        if p < limit then tree:add(f.data, dtvb(p, limit - p)) end
    elseif tname == "SYNC_WRITE" then
        if p < limit then tree:add(f.data, dtvb(p, limit - p)) end
        local slice_len = dtvb(pos + 2, 1):uint()
        if slice_len == 0 then return "SYNC_WRITE slice_len 0" end
        if (limit - p) % slice_len ~= 0 then return "SYNC_WRITE data is not whole slices" end
    elseif tname == "SYNC_READ" or tname == "SYNC_READ_REPLY" then
        local length = dtvb(pos + 2, 1):uint()
        local i = 1
        while p + 2 + length <= limit do
            local rt = tree:add(armbus, dtvb(p, 2 + length), "Record " .. i)
            rt:add(f.rec_address, dtvb(p, 1))
            rt:add(f.rec_status, dtvb(p + 1, 1))
            if length > 0 then rt:add(f.data, dtvb(p + 2, length)) end
            p = p + 2 + length
            i = i + 1
        end
        if p < limit then return tname .. " records are not whole " .. (2 + length) .. "-byte units" end
    elseif tname == "ENUMERATE" or tname == "ENUMERATE_REPLY" then
        local count = dtvb(pos, 1):uint()
        local i = 1
        while p + 6 <= limit do
            local rt = tree:add(armbus, dtvb(p, 6), "Joint " .. i)
            rt:add_le(f.rec_model, dtvb(p, 2))
            rt:add_le(f.rec_serial, dtvb(p + 2, 4))
            p = p + 6
            i = i + 1
        end
        if p < limit or count ~= i - 1 then return tname .. " count disagrees with the records" end
    elseif tname == "CYCLE" then
        -- one i32 goal per joint from `first` on (docs/protocol.md, "The cyclic exchange")
        local mode, first = dtvb(pos + 3, 1):uint(), dtvb(pos + 4, 1):uint()
        local gt = tree
        if p < limit then
            gt = tree:add(armbus, dtvb(p, limit - p), "Goals (" .. math.floor((limit - p) / CYCLE_GOAL_SIZE) .. ")")
        end
        local i = 0
        while p + CYCLE_GOAL_SIZE <= limit do
            gt:add_le(f.goal, dtvb(p, CYCLE_GOAL_SIZE)):prepend_text("joint " .. (first + i) .. ": ")
            p = p + CYCLE_GOAL_SIZE
            i = i + 1
        end
        if p < limit then return "CYCLE goals are not whole 4-byte units" end
        if mode == 0 and i > 0 then return "CYCLE with mode 0 (no goals) carries goals" end
    elseif tname == "CYCLE_REPLY" then
        -- records of address, status, result, age_us u16, then `length` bytes; chain end first
        local length = dtvb(pos + 2, 1):uint()
        local size = CYCLE_RECORD_HEAD + length
        local i = 1
        while p + size <= limit do
            local rt = tree:add(armbus, dtvb(p, size), "Record " .. i .. ", joint " .. dtvb(p, 1):uint())
            rt:add(f.rec_address, dtvb(p, 1))
            rt:add(f.rec_status, dtvb(p + 1, 1))
            local res = rt:add(f.rec_result, dtvb(p + 2, 1))
            res:add(f.rec_read_result, dtvb(p + 2, 1))
            res:add(f.rec_goal_result, dtvb(p + 2, 1))
            rt:add_le(f.rec_age, dtvb(p + 3, 2))
            if length > 0 then rt:add(f.data, dtvb(p + CYCLE_RECORD_HEAD, length)) end
            p = p + size
            i = i + 1
        end
        if p < limit then return "CYCLE_REPLY records are not whole " .. size .. "-byte units" end
    end
    return nil
end

-- Dissect one decoded frame; returns a short summary for the Info column.
local function dissect_frame(ftree, dtvb, n)
    local vk = dtvb(0, 1):uint()
    local kind = bit32.band(vk, 0x0F)
    ftree:add(f.version, dtvb(0, 1), bit32.rshift(vk, 4))
    ftree:add(f.kind, dtvb(0, 1), kind)
    ftree:add(f.seq, dtvb(1, 1))
    local ft = ftree:add(f.flags, dtvb(2, 1))
    ft:add(f.retransmit, dtvb(2, 1))
    local summary = (KINDS[kind] or ("kind " .. kind)) .. " seq=" .. dtvb(1, 1):uint()
    if kind == 0 and n >= DATA_OVERHEAD then
        local typ = dtvb(5, 1):uint()
        ftree:add(f.src, dtvb(3, 1))
        ftree:add(f.dst, dtvb(4, 1))
        ftree:add(f.type, dtvb(5, 1))
        ftree:add_le(f.msg_id, dtvb(6, 2))
        ftree:add(f.ttl, dtvb(8, 1))
        ftree:add(f.length, dtvb(9, 1))
        local plen = n - DATA_OVERHEAD
        local pt = plen > 0 and ftree:add(f.payload, dtvb(HEADER_SIZE, plen)) or ftree
        local bad = dissect_payload(pt, TYPES[typ], dtvb, HEADER_SIZE, HEADER_SIZE + plen)
        summary = summary .. string.format(" %d->%d %s id=%d", dtvb(3, 1):uint(), dtvb(4, 1):uint(),
            TYPES[typ] or string.format("0x%02x", typ), dtvb(6, 2):le_uint())
        if bad then
            pt:add(f.payload_error, "LENGTH")
            pt:add_proto_expert_info(e_payload, bad)
            summary = summary .. " !payload"
        end
    end
    if bit32.band(dtvb(2, 1):uint(), 0x01) ~= 0 then summary = summary .. " R" end
    return summary
end

function armbus.dissector(tvb, pinfo, tree)
    pinfo.cols.protocol = "armbus"
    local len = tvb:len()
    local root = tree:add(armbus, tvb(), "armbus chunk, " .. len .. " bytes")
    local info = {}
    local start = 0
    local nframe = 0
    while start < len do
        local stop = start
        while stop < len and tvb(stop, 1):uint() ~= 0 do stop = stop + 1 end
        local plen = stop - start
        local delimited = stop < len
        if plen > 0 then
            nframe = nframe + 1
            local ftree = root:add(armbus, tvb(start, delimited and plen + 1 or plen), "Frame " .. nframe)
            ftree:add(f.encoded, tvb(start, plen))
            local err
            local raw
            if not delimited then
                ftree:add_proto_expert_info(e_partial)
            end
            if plen > MAX_ENCODED - 1 then
                err = "OVERSIZE"
            else
                raw, err = cobs_decode(tvb, start, plen)
            end
            if raw then
                local n = raw:len()
                local dtvb = raw:tvb("armbus frame " .. nframe)
                if n < CONTROL_FRAME_SIZE then
                    err = "TRUNCATED"
                else
                    local crc_item = ftree:add(f.crc, dtvb(n - 2, 2))
                    local good = crc16(raw, n - 2) == dtvb(n - 2, 2):uint()
                    ftree:add(f.crc_ok, good)
                    if not good then
                        crc_item:add_proto_expert_info(e_crc)
                        err = "CRC"
                    else
                        local vk = dtvb(0, 1):uint()
                        local kind = bit32.band(vk, 0x0F)
                        if bit32.rshift(vk, 4) ~= 1 then
                            err = "VERSION"
                        elseif kind > 3 then
                            err = "KIND"
                        elseif kind ~= 0 and n ~= CONTROL_FRAME_SIZE then
                            err = "LENGTH"
                        elseif kind == 0 and n < DATA_OVERHEAD then
                            err = "TRUNCATED"
                        elseif kind == 0 and dtvb(9, 1):uint() ~= n - DATA_OVERHEAD then
                            err = "LENGTH"
                        elseif kind == 0 and not TYPES[dtvb(5, 1):uint()] then
                            err = "TYPE"
                        end
                        local summary = dissect_frame(ftree, dtvb, n)
                        if not err then info[#info + 1] = summary end
                    end
                end
            end
            if err then
                ftree:add(f.error, tvb(start, plen), err)
                ftree:add_proto_expert_info(e_line, "line error " .. err)
                info[#info + 1] = (delimited and "" or "partial ") .. "!" .. err
            end
        end
        start = stop + 1
    end
    pinfo.cols.info = table.concat(info, " | ")
    return len
end

local encap = (wtap_encaps and wtap_encaps.USER0) or wtap.USER0
DissectorTable.get("wtap_encap"):add(encap, armbus)
