#!/usr/bin/env pwsh
#Requires -Version 7.0
# azd preprovision hook: give this azd environment callbridge's three secrets, once.
#
# A secret already set (32 characters or more) is kept, so re-running never rotates it; an empty
# one is generated; a short one is an error. Values go straight into the azd environment
# (.azure/<env>/.env, git-ignored), from where main.parameters.json passes them to @secure()
# parameters. Nothing here prints a secret.

$Secrets = @('CALLBRIDGE_SIGNING_KEY', 'CALLBRIDGE_WEBHOOK_SECRET', 'CALLBRIDGE_API_KEY')
$MinLength = 32

function Stop-Hook([string] $Message) {
    [Console]::Error.WriteLine("preprovision: $Message")
    exit 1
}

# 64 hex characters (256 bits) from the system's CSPRNG. URL-safe as they are: the postdeploy
# hook puts CALLBRIDGE_WEBHOOK_SECRET in the subscription's query string without encoding it.
function New-Secret {
    $bytes = [byte[]]::new(32)
    $rng = [System.Security.Cryptography.RandomNumberGenerator]::Create()
    try { $rng.GetBytes($bytes) } finally { $rng.Dispose() }
    return -join ($bytes | ForEach-Object { $_.ToString('x2') })
}

if (-not (Get-Command azd -ErrorAction SilentlyContinue)) {
    Stop-Hook 'the Azure Developer CLI (azd) is not on PATH'
}

foreach ($name in $Secrets) {
    $current = (azd env get-value $name 2>$null | Out-String).Trim()
    if ($LASTEXITCODE -ne 0) { $current = '' }
    if ($current.Length -ge $MinLength) {
        Write-Host "preprovision: $name is set; kept"
        continue
    }
    if ($current.Length -gt 0) {
        Stop-Hook "$name is shorter than $MinLength characters; set a longer value or clear it (azd env set $name '') to have one generated"
    }
    azd env set $name (New-Secret) | Out-Null
    if ($LASTEXITCODE -ne 0) { Stop-Hook "could not store $name in the azd environment" }
    Write-Host "preprovision: $name generated"
}
