; Inno Setup script for the casdesk Windows installer.
;
; Build on Windows, after `python packaging\build.py` produced the one-folder app:
;   iscc /DAppDir=C:\path\to\casdesk-build\dist\casdesk /DVariant=cuda packaging\casdesk.iss
; (Inno Setup 6: https://jrsoftware.org/isinfo.php). The defaults below match build.py's
; default output folder (%TEMP%\casdesk-build). The installer lands in OutputDir.
;
; Per-user install by default (no administrator rights needed on locked-down
; workstations); the user may choose an all-users install in the wizard.

#define AppName "casdesk"
#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#ifndef Variant
  #define Variant "cuda"
#endif
#ifndef AppDir
  #define AppDir GetEnv("TEMP") + "\casdesk-build\dist\casdesk"
#endif

[Setup]
AppId={{5B0C3E1A-8F7D-4C2B-9E61-CA5DE5C0A001}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion} ({#Variant})
AppPublisher=casdesk contributors
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir={#AppDir}\..
OutputBaseFilename={#AppName}-{#AppVersion}-windows-x64-{#Variant}-setup
SetupIconFile=..\casdesk\assets\casdesk.ico
UninstallDisplayIcon={app}\casdesk-gui.exe
; torch + CUDA are GBs: LZMA2 solid compression takes long to build but halves the download
Compression=lzma2/ultra64
SolidCompression=yes
LZMANumBlockThreads=4
DiskSpanning=no
WizardStyle=modern
ChangesAssociations=yes
ChangesEnvironment=yes

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"
Name: "addtopath"; Description: "Add the casdesk command line to PATH"; GroupDescription: "Command line:"; Flags: unchecked
Name: "associate"; Description: "Open .casdesk project files with casdesk"; GroupDescription: "File types:"

[Files]
Source: "{#AppDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\casdesk"; Filename: "{app}\casdesk-gui.exe"
Name: "{group}\casdesk self-test"; Filename: "{cmd}"; Parameters: "/k ""{app}\casdesk.exe"" selftest"; WorkingDir: "{userdocs}"
Name: "{group}\Uninstall casdesk"; Filename: "{uninstallexe}"
Name: "{autodesktop}\casdesk"; Filename: "{app}\casdesk-gui.exe"; Tasks: desktopicon

[Registry]
Root: HKA; Subkey: "Software\Classes\.casdesk"; ValueType: string; ValueName: ""; ValueData: "casdesk.project"; Flags: uninsdeletevalue; Tasks: associate
Root: HKA; Subkey: "Software\Classes\casdesk.project"; ValueType: string; ValueName: ""; ValueData: "casdesk project"; Flags: uninsdeletekey; Tasks: associate
Root: HKA; Subkey: "Software\Classes\casdesk.project\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: "{app}\casdesk-gui.exe,0"; Tasks: associate
Root: HKA; Subkey: "Software\Classes\casdesk.project\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\casdesk-gui.exe"" ""%1"""; Tasks: associate
Root: HKCU; Subkey: "Environment"; ValueType: expandsz; ValueName: "Path"; ValueData: "{olddata};{app}"; Check: NeedsAddPath(ExpandConstant('{app}')); Tasks: addtopath

[Run]
Filename: "{app}\casdesk-gui.exe"; Description: "{cm:LaunchProgram,casdesk}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; settings and logs live in the user's profile and are kept; only the app folder goes
Type: filesandordirs; Name: "{app}\_internal\__pycache__"

[Code]
function NeedsAddPath(Dir: string): Boolean;
var
  Path: string;
begin
  if not RegQueryStringValue(HKCU, 'Environment', 'Path', Path) then
  begin
    Result := True;
    exit;
  end;
  Result := Pos(';' + Uppercase(Dir) + ';', ';' + Uppercase(Path) + ';') = 0;
end;
