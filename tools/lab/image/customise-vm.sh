#!/bin/sh
# Runs inside the VM rootfs (chroot) at image build time.
set -eu

echo lab > /etc/hostname
echo '/dev/vda / ext4 rw,noatime 0 1' > /etc/fstab

# eth0: QEMU user networking (management, ssh via 127.0.0.1 port forwards).
cat > /etc/systemd/network/10-mgmt.network <<'N'
[Match]
Name=eth0
[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no
N

# eth1: the cluster segment; its address comes from the kernel command line
# (lab.ip=A.B.C.D/NN) so one image serves every VM.
cat > /usr/local/sbin/lab-net-gen <<'G'
#!/bin/sh
IP=
for a in $(cat /proc/cmdline); do case $a in lab.ip=*) IP=${a#lab.ip=};; esac; done
[ -n "$IP" ] || exit 0
mkdir -p /run/systemd/network
printf '[Match]\nName=eth1\n[Network]\nAddress=%s\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n' "$IP" \
  > /run/systemd/network/20-cluster.network
G
chmod 0755 /usr/local/sbin/lab-net-gen
cat > /etc/systemd/system/lab-net-gen.service <<'S'
[Unit]
Description=Lab cluster address from the kernel command line
DefaultDependencies=no
Before=systemd-networkd.service network-pre.target
Wants=network-pre.target
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/lab-net-gen
[Install]
WantedBy=sysinit.target
S
systemctl enable -q systemd-networkd lab-net-gen
# A lab VM starts with no role applied: services the roles own stay off.
systemctl disable -q keepalived nfs-kernel-server 2>/dev/null || true
systemctl mask -q systemd-networkd-wait-online apt-daily.timer apt-daily-upgrade.timer \
  e2scrub_reap.service man-db.timer fstrim.timer 2>/dev/null || true
# NFS helpers start on demand, not at boot (boot time matters under TCG).
systemctl disable -q rpcbind.service rpcbind.socket nfs-client.target 2>/dev/null || true
systemctl mask -q nfs-blkmap.service 2>/dev/null || true

# Small initrd: only the virtio drivers the VM boots from.
sed -i 's/^MODULES=.*/MODULES=list/' /etc/initramfs-tools/initramfs.conf
printf 'virtio_pci\nvirtio_blk\nvirtio_net\next4\n' > /etc/initramfs-tools/modules
update-initramfs -u -k all >/dev/null

# No DNS: fail fast instead of timing out.
rm -f /etc/resolv.conf
echo 'nameserver 127.0.0.1' > /etc/resolv.conf

# The loopback mirror: QEMU's guestfwd maps 10.0.2.100:80 to a process on
# the host that serves <cache>/mirror/<key>/ (a flat apt repo and a pip index).
echo '10.0.2.100 mirror.lab' >> /etc/hosts
rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*
echo 'deb [trusted=yes] http://mirror.lab/debian ./' > /etc/apt/sources.list.d/lab-mirror.list
printf '[global]\nindex-url = http://mirror.lab/pypi/simple/\ntrusted-host = mirror.lab\n' > /etc/pip.conf

# sshd: keys only, quick.
printf 'PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n' \
  > /etc/ssh/sshd_config.d/lab.conf
