# Prepares a fresh Windows Server VM for hack/e2e-kind-windows.sh: the
# OpenSSH server with key authentication for administrators, and inbound
# rules for SSH and flannel's VXLAN (UDP 4789). Run it as an administrator,
# e.g. by a cloud's run-command (the e2e-windows workflow uses Azure's):
#
#   powershell -ExecutionPolicy Bypass -File prepare-windows-host.ps1 -PublicKey "ssh-ed25519 AAAA... e2e"
#
# It takes a public key only; the private key never reaches the VM.
param(
    [Parameter(Mandatory = $true)]
    [ValidatePattern('^(ssh-ed25519|ecdsa-sha2-nistp256|ssh-rsa) [A-Za-z0-9+/=]+( .*)?$')]
    [string]$PublicKey
)
$ErrorActionPreference = 'Stop'

# Windows Server 2025 ships the OpenSSH server; 2019 and 2022 install it.
if (-not (Get-Service -Name sshd -ErrorAction SilentlyContinue)) {
    Add-WindowsCapability -Online -Name OpenSSH.Server~~~~0.0.1.0 | Out-Null
}
Set-Service -Name sshd -StartupType Automatic
Start-Service -Name sshd

# sshd_config's default "Match Group administrators" reads this file, which
# only Administrators and SYSTEM may read (SIDs: any display language).
$keys = Join-Path $env:ProgramData 'ssh\administrators_authorized_keys'
Set-Content -Path $keys -Value $PublicKey -Encoding ascii
icacls.exe $keys /inheritance:r /grant '*S-1-5-32-544:F' /grant '*S-1-5-18:F' | Out-Null
if ($LASTEXITCODE -ne 0) { throw "icacls on $keys failed: $LASTEXITCODE" }

if (-not (Get-NetFirewallRule -Name 'OpenSSH-Server-In-TCP' -ErrorAction SilentlyContinue)) {
    New-NetFirewallRule -Name 'OpenSSH-Server-In-TCP' -DisplayName 'OpenSSH Server (sshd)' -Direction Inbound `
        -Protocol TCP -LocalPort 22 -Action Allow | Out-Null
}
if (-not (Get-NetFirewallRule -Name 'wmco-e2e-flannel-vxlan' -ErrorAction SilentlyContinue)) {
    New-NetFirewallRule -Name 'wmco-e2e-flannel-vxlan' -DisplayName 'flannel VXLAN (UDP 4789)' -Direction Inbound `
        -Protocol UDP -LocalPort 4789 -Action Allow | Out-Null
}
Write-Output "prepared $env:COMPUTERNAME for SSH key authentication and flannel VXLAN"
