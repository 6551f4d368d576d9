import json, os, sys
def uuid(node, rec): return "%08X-0000-4000-8000-%012X" % (0xA0000000 + node, rec)
def bus(node, rec, items):
    b = {"_name": "thunderboltusb4_bus_%d" % (rec-1), "device_name_key": "Mac Studio", "vendor_name_key": "Apple Inc.",
         "domain_uuid_key": uuid(node, rec), "route_string_key": "0", "switch_uid_key": "0x05AC%04X%06X" % (node, rec),
         "receptacle_1_tag": {"current_link_width_key": "0x2", "current_speed_key": "Up to 80 Gb/s" if items else "",
                              "link_status_key": "0x2" if items else "0x7", "receptacle_id_key": str(rec),
                              "receptacle_status_key": "receptacle_connected" if items else "receptacle_no_devices_connected"}}
    if items: b["_items"] = items
    return b
def peer(node, rec, name, route="1"):
    return {"_name": name, "device_name_key": "Mac Studio", "vendor_name_key": "Apple Inc.", "domain_uuid_key": uuid(node, rec),
            "route_string_key": route, "switch_uid_key": "0x05AC%04X%06X" % (node, rec), "mode_key": "usb_four", "link_speed_key": "Up to 80 Gb/s"}
def hub(items):
    return {"_name": "Thunderbolt 5 Hub", "device_name_key": "Thunderbolt 5 Hub", "vendor_name_key": "OWC",
            "route_string_key": "1", "switch_uid_key": "0x00D4000000C0FFEE", "mode_key": "thunderbolt_five", "_items": items}
def write(d, node, name, text):
    os.makedirs(os.path.join(d, node), exist_ok=True)
    open(os.path.join(d, node, name + ".txt"), "w").write(text)
ports = "\n".join(["Hardware Port: Ethernet\nDevice: en0\nEthernet Address: 00:00:5e:00:53:10\n",
  "Hardware Port: Wi-Fi\nDevice: en1\nEthernet Address: 00:00:5e:00:53:11\n",
  "Hardware Port: Thunderbolt 1\nDevice: en2\nEthernet Address: 00:00:5e:00:53:12\n",
  "Hardware Port: Thunderbolt 2\nDevice: en3\nEthernet Address: 00:00:5e:00:53:13\n",
  "Hardware Port: Thunderbolt 3\nDevice: en4\nEthernet Address: 00:00:5e:00:53:14\n",
  "Hardware Port: Thunderbolt 4\nDevice: en5\nEthernet Address: 00:00:5e:00:53:15\n",
  "Hardware Port: Thunderbolt Bridge\nDevice: bridge0\nEthernet Address: 36:00:00:00:53:00\n"]) + "\nVLAN Configurations\n===================\n"
def ifconfig(lan, tb_addrs, members, bridge_up, utun=None):
    out = "lo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> mtu 16384\n\toptions=1203<RXCSUM,TXCSUM,TXSTATUS,SW_TIMESTAMP>\n\tinet 127.0.0.1 netmask 0xff000000\n\tinet6 ::1 prefixlen 128 \n\tnd6 options=201<PERFORMNUD,DAD>\n"
    out += "en0: flags=8863<UP,BROADCAST,SMART,RUNNING,SIMPLEX,MULTICAST> mtu 1500\n\toptions=50b<RXCSUM,TXCSUM,VLAN_HWTAGGING,AV,CHANNEL_IO>\n\tether 00:00:5e:00:53:10\n\tmedia: autoselect (none)\n\tstatus: inactive\n"
    out += "en1: flags=8863<UP,BROADCAST,SMART,RUNNING,SIMPLEX,MULTICAST> mtu 1500\n\toptions=6460<TSO4,TSO6,CHANNEL_IO,PARTIAL_CSUM,ZEROINVERT_CSUM>\n\tether 00:00:5e:00:53:11\n\tinet6 fe80::1c:2d3e:4f5a:6b7c%%en1 prefixlen 64 secured scopeid 0xb \n\tinet %s netmask 0xffffff00 broadcast 192.168.0.255\n\tnd6 options=201<PERFORMNUD,DAD>\n\tmedia: autoselect\n\tstatus: active\n" % lan
    for i, dev in enumerate(["en2", "en3", "en4", "en5"]):
        active = dev in tb_addrs or dev in ("en3", "en5")
        out += "%s: flags=8963<UP,BROADCAST,SMART,RUNNING,PROMISC,SIMPLEX,MULTICAST> mtu 1500\n\toptions=460<TSO4,TSO6,CHANNEL_IO>\n\tether 36:00:00:00:53:%02x\n" % (dev, 0x20 + i)
        if tb_addrs.get(dev):
            a, m = tb_addrs[dev]
            out += "\tinet %s netmask %s broadcast %s\n" % (a, m[0], m[1])
        out += "\tmedia: autoselect <full-duplex>\n\tstatus: %s\n" % ("active" if active else "inactive")
    out += "bridge0: flags=%s mtu 1500\n\toptions=63<RXCSUM,TXCSUM,TSO4,TSO6>\n\tether 36:00:00:00:53:00\n\tConfiguration:\n\t\tid 0:0:0:0:0:0 priority 0 hellotime 0 fwddelay 0\n\t\tmaxage 0 holdcnt 0 proto stp maxaddr 100 timeout 1200\n\t\troot id 0:0:0:0:0:0 priority 0 ifcost 0 port 0\n\t\tipfilter disabled flags 0x0\n" % ("8863<UP,BROADCAST,SMART,RUNNING,SIMPLEX,MULTICAST>" if bridge_up else "8822<BROADCAST,SMART,SIMPLEX,MULTICAST>")
    for j, m in enumerate(members):
        out += "\tmember: %s flags=3<LEARNING,DISCOVER>\n\t        ifmaxaddr 0 port %d priority 0 path cost 0\n" % (m, 9 + 2*j)
    out += "\tnd6 options=201<PERFORMNUD,DAD>\n\tmedia: <unknown type>\n\tstatus: inactive\n"
    if utun:
        out += "utun4: flags=8051<UP,POINTOPOINT,RUNNING,MULTICAST> mtu 1280\n\tinet %s --> %s netmask 0xffffffff\n" % (utun, utun)
    return out
def netstat(lan, tb_routes, extra=""):
    out = "Routing tables\n\nInternet:\nDestination        Gateway            Flags               Netif Expire\n"
    out += "default            192.168.0.1        UGScg                 en1       \n"
    out += extra
    out += "127                127.0.0.1          UCS                   lo0       \n127.0.0.1          127.0.0.1          UH                    lo0       \n"
    for r in tb_routes: out += r
    out += "169.254            link#11            UCS                   en1      !\n192.168.0          link#11            UCS                   en1      !\n"
    out += "192.168.0.1/32     link#11            UCS                   en1      !\n192.168.0.1        0:0:5e:0:53:1      UHLWIir               en1   1183\n"
    out += "%-18s 0:0:5e:0:53:11     UHLWI                 lo0       \n" % lan
    out += "224.0.0/4          link#11            UmCS                  en1      !\n255.255.255.255/32 link#11            UCS                   en1      !\n"
    out += "\nInternet6:\nDestination                             Gateway                                 Flags               Netif Expire\ndefault                                 fe80::%utun0                            UGcIg               utun0       \n::1                                     ::1                                     UHL                   lo0       \n"
    return out
ibv = "    device                 node GUID\n    ------              ----------------\n" + "".join("    rdma_en%d            0000000000000000\n" % i for i in range(2, 8))
swv = "ProductName:\t\tmacOS\nProductVersion:\t\t26.3\nBuildVersion:\t\t25D125\n"
def node(d, idx, name, lan, sp, tb_addrs, members, bridge_up, tb_routes, rdma="enabled", utun=None, extra=""):
    write(d, name, "system_profiler", json.dumps({"SPThunderboltDataType": sp}, indent=2) + "\n")
    write(d, name, "networksetup", ports)
    write(d, name, "ifconfig", ifconfig(lan, tb_addrs, members, bridge_up, utun))
    write(d, name, "netstat", netstat(lan, tb_routes, extra))
    write(d, name, "ibv_devices", ibv)
    write(d, name, "rdma_ctl", rdma + "\n")
    write(d, name, "sw_vers", swv)
    write(d, name, "ping", "PING 10.10.0.2 (10.10.0.2): 56 data bytes\n64 bytes from 10.10.0.2: icmp_seq=0 ttl=64 time=0.612 ms\n\n--- 10.10.0.2 ping statistics ---\n1 packets transmitted, 1 packets received, 0.0% packet loss\nround-trip min/avg/max/stddev = 0.612/0.612/0.612/0.000 ms\n")
def sp_direct(me, other, other_name):
    return [bus(me, 1, None), bus(me, 2, [peer(other, 2, other_name)]), bus(me, 3, None), bus(me, 4, [peer(other, 4, other_name)])]
# seed: fresh boot, bridge0 up with en3 and en5
node("seed", 1, "hwStudio1", "192.168.0.105", sp_direct(1, 2, "hwStudio2"), {}, ["en3", "en5"], True, [])
node("seed", 2, "hwStudio2", "192.168.0.107", sp_direct(2, 1, "hwStudio1"), {}, ["en3", "en5"], True, [])
# converged: after apply
M = ("0xfffffffc", "")
def conv(a3, a5):
    return {"en3": (a3, ("0xfffffffc", a3.rsplit(".",1)[0] + ".3")), "en5": (a5, ("0xfffffffc", a5.rsplit(".",1)[0] + ".3"))}
r1 = ["10.10.0/30          link#14            UC                    en3      !\n", "10.10.1/30          link#16            UC                    en5      !\n"]
node("converged", 1, "hwStudio1", "192.168.0.105", sp_direct(1, 2, "hwStudio2"), conv("10.10.0.1", "10.10.1.1"), [], False, r1)
node("converged", 2, "hwStudio2", "192.168.0.107", sp_direct(2, 1, "hwStudio1"), conv("10.10.0.2", "10.10.1.2"), [], False, r1)
# hub: one cable each way through a Thunderbolt hub on receptacle 2; a VPN route 10.10.0.0/16 on hwStudio1
spA = [bus(1, 1, None), bus(1, 2, [hub([peer(2, 2, "hwStudio2", "301")])]), bus(1, 3, None), bus(1, 4, None)]
spB = [bus(2, 1, None), bus(2, 2, [hub([peer(1, 2, "hwStudio1", "301")])]), bus(2, 3, None), bus(2, 4, None)]
vpn = "10.10/16           utun4              UCS                 utun4       \n100.64/10          link#20            UCSI                utun4       \n"
node("hub", 1, "hwStudio1", "192.168.0.105", spA, {}, ["en3", "en5"], True, [], utun="100.101.2.3", extra=vpn)
node("hub", 2, "hwStudio2", "192.168.0.107", spB, {}, ["en3", "en5"], True, [])
